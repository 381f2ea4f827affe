"""Seats: the licence is never exceeded, by racing clients, by racing
daemons, or by entries other LDAP clients add; deleting frees a seat,
deactivating does not; a damaged counter heals."""

import threading
import time

import pytest

from otasenv import Daemon, RpcError, SLOW, wait_for
from slapdenv import running_slapd


@pytest.fixture(scope="module")
def slapd():
    # Own directory: these tests fill it to the brim.
    with running_slapd(hash="SSHA", dbnosync=True) as s:
        yield s


def make_daemon(slapd, path, seats, name="otasdird", **extra):
    settings = {"ldap": {"reconcile_interval_s": 1},
                "socket": {"max_inflight_per_connection": 256}}
    for k, v in extra.items():
        settings.setdefault(k, {}).update(v)
    return Daemon(slapd, path, seats=seats, name=name, extra=settings)


def create(c, username, **kw):
    params = {"username": username, "full_name": f"User {username}",
              "email": f"{username}@example.com"}
    params.update(kw)
    return c.call("user.create", params)


def counter(slapd):
    e = slapd.ldapsearch(f"cn=otasdir-seats,{slapd.suffix}", scope="base",
                         attrs=["otasSeatsUsed", "otasSeatPending"])
    return e[0] if e else None


def race(daemons, clients_per_daemon, creates_per_client, prefix):
    """Many clients on each daemon create accounts at once; returns
    (granted, refused, other) counts."""
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(daemons) * clients_per_daemon)

    def worker(d, k):
        with d.client(timeout=60 * SLOW) as c:
            barrier.wait()
            for j in range(creates_per_client):
                rep = create(c, f"{prefix}{k}x{j}")
                with lock:
                    results.append(rep)

    threads = [threading.Thread(target=worker, args=(d, f"{i}d{n}"))
               for n, d in enumerate(daemons)
               for i in range(clients_per_daemon)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted = sum(1 for r in results if "result" in r)
    refused = sum(1 for r in results if "error" in r and
                  r["error"]["data"].get("reason") == "seat_limit_reached")
    other = [r for r in results if "error" in r and
             r["error"]["data"].get("reason") != "seat_limit_reached"]
    return granted, refused, other


def test_race_one_daemon(slapd, tmpdir_short):
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 30)
    d.start()
    try:
        granted, refused, other = race([d], 60, 3, "r1u")
        assert other == []
        assert granted == 30
        assert refused == 150
        assert slapd.count_people() == used + 30
        with d.client() as c:
            lic = c.result("license.get")
            assert lic["used"] == used + 30
            assert lic["available"] == 0
        e = create(d.client(), "r1extra")
        assert e["error"]["data"]["reason"] == "seat_limit_reached"
        assert e["error"]["data"]["seats"] == used + 30
        assert e["error"]["data"]["used"] == used + 30
        # every decision is logged with the counts
        log = d.log_text()
        assert "seats: granted 1" in log and "seats: refused 1" in log
    finally:
        d.stop()


def test_race_two_daemons(slapd, tmpdir_short):
    used = slapd.count_people()
    d1 = make_daemon(slapd, tmpdir_short / "a", seats=used + 30)
    d2 = make_daemon(slapd, tmpdir_short / "b", seats=used + 30,
                     name="second")
    d1.start()
    d2.start()
    try:
        granted, refused, other = race([d1, d2], 30, 3, "r2u")
        assert other == []
        assert granted == 30
        assert refused == 150
        assert slapd.count_people() == used + 30
    finally:
        d1.stop()
        d2.stop()


def test_external_add_and_delete_count(slapd, tmpdir_short):
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 2)
    d.start()
    try:
        c = d.client()
        assert "result" in create(c, "ext1")
        # another LDAP client adds an entry (not even an account)
        slapd.ldapadd(f"dn: cn=printer,{slapd.people_dn}\n"
                      "objectClass: device\ncn: printer\n")
        wait_for(lambda: c.result("license.get")["used"] == used + 2,
                 what="the view to see the external add")
        rep = create(c, "ext2")
        assert rep["error"]["data"]["reason"] == "seat_limit_reached"
        assert slapd.count_people() == used + 2
        # another client deletes it: the seat is free again
        slapd.ldapdelete(f"cn=printer,{slapd.people_dn}")
        wait_for(lambda: c.result("license.get")["used"] == used + 1,
                 what="the view to see the external delete")
        assert "result" in create(c, "ext2")
        assert slapd.count_people() == used + 2
        c.close()
    finally:
        d.stop()


def test_deactivate_keeps_seat_delete_frees_it(slapd, tmpdir_short):
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 1)
    d.start()
    try:
        c = d.client()
        assert "result" in create(c, "seat1")
        c.result("user.update", username="seat1", status="inactive")
        lic = c.result("license.get")
        assert lic["used"] == used + 1 and lic["inactive"] >= 1
        assert create(c, "seat2")["error"]["data"]["reason"] == \
            "seat_limit_reached"
        c.result("user.delete", username="seat1", confirm="seat1")
        assert "result" in create(c, "seat2")
        c.close()
    finally:
        d.stop()


def test_lowering_seats_below_used(slapd, tmpdir_short):
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 5)
    d.start()
    try:
        c = d.client()
        d.settings["license"]["seats"] = max(1, used - 3)
        d.write_config()
        d.reload()
        assert c.result("license.get")["seats"] == max(1, used - 3)
        rep = create(c, "low1")
        assert rep["error"]["data"]["reason"] == "seat_limit_reached"
        assert slapd.count_people() == used          # nothing touched
        c.close()
    finally:
        d.stop()


def test_counter_deleted_by_hand_is_rebuilt(slapd, tmpdir_short):
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 10)
    d.start()
    try:
        c = d.client()
        wait_for(lambda: counter(slapd) is not None, what="counter")
        slapd.ldapdelete(f"cn=otasdir-seats,{slapd.suffix}")
        assert "result" in create(c, "rebuilt1")
        e = wait_for(lambda: counter(slapd), what="counter rebuilt")
        wait_for(lambda: int(counter(slapd).first("otasSeatsUsed")) ==
                 used + 1, what="counter to match the directory")
        assert "rebuilding" in d.log_text() or \
            "creating counter" in d.log_text()
        c.close()
    finally:
        d.stop()


def test_counter_corrupted_heals(slapd, tmpdir_short):
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 3)
    d.start()
    try:
        c = d.client()
        wait_for(lambda: counter(slapd) is not None, what="counter")
        dn = f"cn=otasdir-seats,{slapd.suffix}"
        # far too high: creates would be refused until reconciled
        slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\n"
                         "replace: otasSeatsUsed\notasSeatsUsed: 999\n")
        assert "result" in create(c, "heal1")
        # far too low: the view still refuses what does not fit
        slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\n"
                         "replace: otasSeatsUsed\notasSeatsUsed: 0\n")
        assert "result" in create(c, "heal2")
        assert "result" in create(c, "heal3")
        assert create(c, "heal4")["error"]["data"]["reason"] == \
            "seat_limit_reached"
        assert slapd.count_people() == used + 3
        wait_for(lambda: int(counter(slapd).first("otasSeatsUsed")) ==
                 used + 3, what="counter repaired")
        assert "reconciled counter" in d.log_text()
        c.close()
    finally:
        d.stop()


def test_abandoned_reservation_heals(slapd, tmpdir_short):
    """A daemon that died between reserving and adding leaves the counter
    one too high and a pending value behind: both heal."""
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 1)
    d.start()
    try:
        c = d.client()
        wait_for(lambda: counter(slapd) is not None, what="counter")
        dn = f"cn=otasdir-seats,{slapd.suffix}"
        old = int(time.time()) - 3600
        slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\n"
                         "increment: otasSeatsUsed\notasSeatsUsed: 1\n-\n"
                         "add: otasSeatPending\n"
                         f"otasSeatPending: deadbeefdeadbeef {old} r 1\n")
        wait_for(lambda: counter(slapd).first("otasSeatPending") is None,
                 what="the abandoned value to go")
        wait_for(lambda: int(counter(slapd).first("otasSeatsUsed")) == used,
                 what="the counter to come down")
        assert "removing abandoned pending value" in d.log_text()
        assert "result" in create(c, "afterheal")
        c.close()
    finally:
        d.stop()


def test_leases_amortise_counter_writes(slapd, tmpdir_short):
    """With seats to spare, creates are served from leases of several
    seats (one counter change per lease, not per create); the counter
    ends exact once the leases close."""
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 1000)
    d.start()
    try:
        with d.client() as c:
            for i in range(40):
                assert "result" in create(c, f"lease{i}")
        log = d.log_text()
        assert "seats: granted 16" in log
        grants = log.count("seats: granted ")
        assert grants <= 10, f"{grants} counter reservations for 40 creates"
        wait_for(lambda: counter(slapd).first("otasSeatPending") is None,
                 what="the lease to close")
        assert int(counter(slapd).first("otasSeatsUsed")) == used + 40
    finally:
        d.stop()


def test_seats_leased_elsewhere_are_not_lost(slapd, tmpdir_short):
    """A daemon holding a lease with a spare seat does not make another
    daemon refuse the last free seat: the refused reservation tries again
    once the lease is given back."""
    used = slapd.count_people()
    d1 = make_daemon(slapd, tmpdir_short / "a", seats=used + 20)
    d2 = make_daemon(slapd, tmpdir_short / "b", seats=used + 20,
                     name="second")
    d1.start()
    d2.start()
    try:
        with d1.client() as c1, d2.client() as c2:
            assert "result" in create(c1, "held1")   # leases 2 seats
            for i in range(19):
                rep = create(c2, f"other{i}")
                assert "result" in rep, rep
            assert slapd.count_people() == used + 20
            rep = create(c1, "held2")
            assert rep["error"]["data"]["reason"] == "seat_limit_reached"
    finally:
        d1.stop()
        d2.stop()


def test_reconcile_counts_only_to_repair(slapd, tmpdir_short):
    """With a live view of the same server, a reconciliation that finds
    the counter right takes the view's count instead of counting the
    directory (at 150,000 entries a count keeps slapd busy for a second,
    in the middle of the writes).  One that finds it too high counts the
    directory before it lowers it; one that finds it too low raises it
    to the view's count."""
    used = slapd.count_people()
    d = make_daemon(slapd, tmpdir_short, seats=used + 5)
    d.start()
    try:
        with d.client() as c:
            assert "result" in create(c, "viewrec1")
        wait_for(lambda: counter(slapd).first("otasSeatPending") is None,
                 what="the lease to close")
        mark = len(d.log_text())
        wait_for(lambda: d.log_text()[mark:].count(
            "entries in the live view: matches") >= 3,
            what="three reconciliations")
        assert "entries counted" not in d.log_text()[mark:]
        assert int(counter(slapd).first("otasSeatsUsed")) == used + 1
        # Too high with nothing pending: the view says so, a count
        # confirms, and the counter comes down.
        dn = f"cn=otasdir-seats,{slapd.suffix}"
        slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\n"
                         f"replace: otasSeatsUsed\notasSeatsUsed: {used + 4}\n")
        wait_for(lambda: int(counter(slapd).first("otasSeatsUsed")) ==
                 used + 1, what="the counter to come down")
        log = d.log_text()[mark:]
        assert f"reconciled counter cn=otasdir-seats,{slapd.suffix} from " \
               f"{used + 4} to {used + 1} ({used + 1} entries under " \
               f"{slapd.people_dn})" in log            # counted, not viewed
        # Too low: raising never admits too many, so the view's count
        # raises it without counting the directory.
        mark = len(d.log_text())
        slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\n"
                         "replace: otasSeatsUsed\notasSeatsUsed: 2\n")
        wait_for(lambda: int(counter(slapd).first("otasSeatsUsed")) ==
                 used + 1, what="the counter to go up")
        log = d.log_text()[mark:]
        assert f"from 2 to {used + 1} ({used + 1} entries under " \
               f"{slapd.people_dn} in the live view)" in log
        assert "entries counted" not in log
    finally:
        d.stop()
