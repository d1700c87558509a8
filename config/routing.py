"""WebSocket routes (Channels consumers are added by the inspection app)."""

websocket_urlpatterns: list = []
