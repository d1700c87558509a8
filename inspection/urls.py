from django.urls import path

from inspection import views

urlpatterns = [
    path("health", views.health, name="health"),
]
