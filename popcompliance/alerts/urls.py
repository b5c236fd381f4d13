"""The alerts pages (mounted at /alerts/), and the alert channels' (/alerts/channels/)."""

from django.urls import path

from popcompliance.alerts import channel_views, views

app_name = "alerts"

urlpatterns = [
    path("", views.alert_list, name="list"),
    path("<int:pk>/", views.alert_detail, name="detail"),
    path("<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("channels/", channel_views.channel_list, name="channel_list"),
    path("channels/add/", channel_views.channel_add, name="channel_add"),
    path("channels/<int:pk>/edit/", channel_views.channel_edit, name="channel_edit"),
    path("channels/<int:pk>/delete/", channel_views.channel_delete, name="channel_delete"),
    path("channels/<int:pk>/test/", channel_views.channel_test, name="channel_test"),
]
