"""WebSocket routes: the consumers behind `config.asgi`'s authentication middleware."""

from django.urls import path

from inspection.consumers import DashboardEventsConsumer, StationEventsConsumer

websocket_urlpatterns: list = [
    path("ws/stations/<slug:slug>/events/", StationEventsConsumer.as_asgi(), name="station-events"),
    path("ws/dashboard/", DashboardEventsConsumer.as_asgi(), name="dashboard-events"),
]
