"""The settings search of a request on the same edits is made once and shared read-only: two
visitors asking at once get the same choice, and a request on other edits is searched anew."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from edits import EYES_TO_EYES

from rewriting.request import AUTO_SETTINGS, parse_request
from rewriting_app import session as ss


def test_one_search_per_request_and_edits_shared_by_visitors():
    session = ss.Session.start("dcgan-digiface")
    request = parse_request({**EYES_TO_EYES, "auto": True})
    assert request.auto == AUTO_SETTINGS
    with ThreadPoolExecutor(2) as pool:
        (first, found), (second, again) = pool.map(
            lambda _: ss.choose_settings(session, request), range(2))
    assert found is again and first.to_json() == second.to_json()  # one search for both
    record = found.record()
    later, kept = ss.choose_settings(session, request)
    assert kept is found  # kept, not searched again
    assert later.to_json() == first.to_json() and kept.record() == record  # never changed
    stats = ss.statistics(session.with_layer(first.layer))
    edited, _, _ = ss.execute_shown(session, first, stats, 1, kept)
    _, other = ss.choose_settings(edited, request)
    assert other is not kept  # on top of an edit, the same request is another search
