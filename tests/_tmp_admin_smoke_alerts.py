from tests.test_alerts import *  # noqa
from tests.test_alerts import record, alert_and_deliver

pytest_plugins = ["tests.smtp"]

def test_zz_admin(server, reports, smtp_sink, admin_client):
    record(server, reports["plain"])
    alert_and_deliver()
    alert = Alert.objects.get()
    for url in ["/admin/alerts/alert/", f"/admin/alerts/alert/{alert.pk}/change/", "/admin/alerts/notification/",
                f"/admin/alerts/notification/{Notification.objects.get().pk}/change/", "/admin/alerts/expirywarning/"]:
        r = admin_client.get(url)
        assert r.status_code == 200, url
    r = admin_client.post(f"/admin/alerts/alert/{alert.pk}/change/", {"ack_comment": "known", "ack_until_0": "", "ack_until_1": ""})
    assert r.status_code == 302, r.content[:3000]
    alert.refresh_from_db()
    assert alert.acknowledged_at and alert.ack_comment == "known"
    assert alert.state() == "acknowledged"
