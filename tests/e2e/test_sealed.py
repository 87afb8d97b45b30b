"""End to end over HTTP: encrypted reasoning (and any other item with ``encrypted_content``) made by
one account never reaches another. Codex sends its whole context again on every turn, the
reasoning items of earlier answers included; the backend cannot decrypt another account's and
refuses the request (``invalid_encrypted_content``), after which every later turn of that session
fails the same way. The fake backend refuses such items like the real one and counts them as
``foreign_reasoning``."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.proxykit import Pool, codex_body, replies, running_pool, sse_types

SESSION = {"session_id": "conv-sealed", "conversation_id": "conv-sealed"}


def said(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def output_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The output items of the answer's ``response.completed`` event, as Codex keeps them."""
    for block in response.text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data:"):
                event = json.loads(line[5:].strip())
                if event.get("type") == "response.completed":
                    return list(event["response"]["output"])
    raise AssertionError(f"no response.completed in {response.text[:300]!r}")


def blobs_in(body: Any) -> list[str]:
    return [item["encrypted_content"] for item in body.get("input", [])
            if isinstance(item, dict) and isinstance(item.get("encrypted_content"), str)]


class Conversation:
    """One Codex session: every turn sends the whole history, the answers' items included."""

    def __init__(self, pool: Pool, path: str = "/backend-api/codex/responses") -> None:
        self.pool, self.path = pool, path
        self.history: list[dict[str, Any]] = []

    def turn(self, text: str) -> httpx.Response:
        self.history.append(said(text))
        body = codex_body(input=list(self.history), prompt_cache_key="conv-sealed")
        response = self.pool.post(self.path, body, headers=SESSION)
        if response.status_code == 200:
            self.history.extend(output_of(response))
        return response


def test_a_session_that_moves_accounts_sends_each_account_only_its_own_reasoning() -> None:
    with running_pool(["a", "b"]) as pool:
        talk = Conversation(pool)
        first = talk.turn("one")
        assert first.status_code == 200 and "response.completed" in sse_types(first)
        home = pool.served_by(first)
        assert home is not None
        away = "b" if home == "a" else "a"
        assert pool.served_by(talk.turn("two")) == home  # the session keeps its account
        assert len(blobs_in(talk.pool.upstream.codex_requests(home)[-1].body)) == 1

        # The home account runs out: the next turn moves, with two of its reasoning items in the context.
        pool.upstream.script(home, replies.usage_limit(resets_in=1800))
        moved = talk.turn("three")
        assert moved.status_code == 200 and pool.served_by(moved) == away, moved.text[:300]
        assert "response.completed" in sse_types(moved)
        assert blobs_in(pool.upstream.codex_requests(away)[-1].body) == []

        # The next turn stays away: its own reasoning goes along, the home account's still does not.
        fourth = talk.turn("four")
        assert fourth.status_code == 200 and pool.served_by(fourth) == away
        sent = blobs_in(pool.upstream.codex_requests(away)[-1].body)
        assert len(sent) == 1 and sent[0].startswith(f"enc:{away}:")
        # Everything else in the context went as the client sent it.
        kept = pool.upstream.codex_requests(away)[-1].body["input"]
        assert [i for i in kept if i.get("type") != "reasoning"] == [
            i for i in talk.history[:-2] if i.get("type") != "reasoning"]
        assert pool.upstream.outcomes["foreign_reasoning"] == 0


def test_a_failover_inside_one_request_leaves_the_failed_accounts_reasoning_out() -> None:
    with running_pool(["a", "b"]) as pool:
        talk = Conversation(pool)
        home = pool.served_by(talk.turn("one"))
        away = "b" if home == "a" else "a"
        assert home is not None
        pool.upstream.script(home, replies.server_error(500))
        answer = talk.turn("two")
        assert answer.status_code == 200 and pool.served_by(answer) == away
        assert blobs_in(pool.upstream.codex_requests(home)[-1].body) != []  # the home account got them
        assert blobs_in(pool.upstream.codex_requests(away)[-1].body) == []
        assert pool.upstream.outcomes["foreign_reasoning"] == 0


def test_encrypted_content_no_account_here_can_read_is_retried_without_it_once() -> None:
    # After a restart the proxy does not know whose the context's reasoning is: the backend refuses
    # the request, and the proxy sends it again without the encrypted items instead of failing the
    # session for good; later turns leave them out from the start.
    with running_pool(["a"]) as pool:
        stranger = {"id": "rs_old", "type": "reasoning", "summary": [], "encrypted_content": "enc:gone:1"}
        compacted = {"id": "cmp_old", "type": "compaction", "encrypted_content": "enc:gone:2"}
        body = codex_body(input=[said("before"), stranger, compacted, said("after")],
                          prompt_cache_key="conv-restarted")
        answer = pool.post(body=body, headers=SESSION)
        assert answer.status_code == 200 and "response.completed" in sse_types(answer), answer.text[:300]
        assert pool.upstream.outcomes["foreign_reasoning"] == 1
        retried = pool.upstream.codex_requests("a")[-1].body
        assert blobs_in(retried) == [] and [i["content"][0]["text"] for i in retried["input"]
                                         if i.get("type") == "message"] == ["before", "after"]
        again = pool.post(body=body, headers=SESSION)
        assert again.status_code == 200 and pool.upstream.outcomes["foreign_reasoning"] == 1
        assert len(pool.upstream.codex_requests("a")) == 3


def test_the_v1_route_keeps_reasoning_with_its_account_too() -> None:
    with running_pool(["a", "b"]) as pool:
        talk = Conversation(pool, "/v1/responses")
        first = talk.turn("one")
        assert first.status_code == 200
        home = pool.served_by(first)
        away = "b" if home == "a" else "a"
        assert home is not None
        pool.upstream.script(home, replies.usage_limit(resets_in=1800))
        moved = talk.turn("two")
        assert moved.status_code == 200 and pool.served_by(moved) == away, moved.text[:300]
        assert pool.upstream.outcomes["foreign_reasoning"] == 0


def test_without_session_affinity_the_reasoning_still_stays_with_its_account() -> None:
    with running_pool(["a", "b"], config={"sticky-mode": "disabled"}) as pool:
        talk = Conversation(pool)
        home = pool.served_by(talk.turn("one"))
        away = "b" if home == "a" else "a"
        assert home is not None
        pool.upstream.script(home, replies.usage_limit(resets_in=1800))
        moved = talk.turn("two")
        assert moved.status_code == 200 and pool.served_by(moved) == away
        assert blobs_in(pool.upstream.codex_requests(away)[-1].body) == []
        assert pool.upstream.outcomes["foreign_reasoning"] == 0


def test_a_wrong_guess_costs_one_retry_and_is_not_repeated() -> None:
    # Two conversations share one prompt_cache_key (a client that sets a fixed one): the proxy
    # guesses the first one's new reasoning is the account's that answered the other one last.
    with running_pool(["a", "b"]) as pool:
        first, second = Conversation(pool), Conversation(pool)
        home = pool.served_by(first.turn("one"))
        away = "b" if home == "a" else "a"
        assert home is not None
        pool.upstream.script(home, replies.usage_limit(resets_in=1800))
        assert pool.served_by(second.turn("other")) == away  # the key's last answer is now away's
        answer = first.turn("two")  # carries home's reasoning, guessed to be away's
        assert answer.status_code == 200 and pool.served_by(answer) == away, answer.text[:300]
        assert pool.upstream.outcomes["foreign_reasoning"] == 1  # one refusal, then sent without it
        assert first.turn("three").status_code == 200
        assert pool.upstream.outcomes["foreign_reasoning"] == 1


def test_a_compaction_made_by_one_account_is_kept_with_it_after_a_pause() -> None:
    # After the compact route, the context is an encrypted compaction item. With no affinity left,
    # the request goes back to the account that made it, as session affinity would (unless another
    # is clearly better), instead of losing the summary elsewhere.
    with running_pool(["a", "b"]) as pool:
        talk = Conversation(pool)
        home = pool.served_by(talk.turn("one"))
        assert home is not None
        compacted = pool.post("/backend-api/codex/responses/compact",
                              codex_body(input=talk.history, prompt_cache_key="conv-sealed"), headers=SESSION)
        assert compacted.status_code == 200 and pool.served_by(compacted) == home
        talk.history = [*compacted.json()["output"], said("after the pause")]
        pipeline = pool.engine.pipeline
        assert pipeline is not None
        pipeline.routing.affinity.forget("conv-sealed")  # the session's affinity ran out
        away = "b" if home == "a" else "a"
        pool.upstream.set_usage(home, primary_used=10.0)  # on quota alone the other account would win
        pool.prime_usage(home, away)
        assert pool.served_by(pool.post()) == away  # (a request of no session goes there)
        body = codex_body(input=talk.history, prompt_cache_key="conv-sealed")
        answer = pool.post(body=body, headers=SESSION)
        assert answer.status_code == 200 and pool.served_by(answer) == home
        assert blobs_in(pool.upstream.codex_requests(home)[-1].body) == [talk.history[0]["encrypted_content"]]
        assert pool.upstream.outcomes["foreign_reasoning"] == 0


def test_another_400_after_the_retry_is_the_clients() -> None:
    with running_pool(["a"]) as pool:
        stranger = {"id": "rs_old", "type": "reasoning", "summary": [], "encrypted_content": "enc:gone:1"}
        bad = {"error": {"message": "Unsupported parameter: 'x'", "type": "invalid_request_error",
                         "param": "x", "code": "unsupported_parameter"}}
        pool.upstream.script("a", replies.Reply(kind="json", status=400, body=bad))
        answer = pool.post(body=codex_body(input=[said("hi"), stranger]))
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_parameter"
        assert len(pool.upstream.codex_requests("a")) == 2  # the refused one and the retry, no more


def test_a_refusal_of_items_known_to_be_the_accounts_own_is_passed_on_without_a_resend() -> None:
    # The same body would only be refused again: the client gets the backend's answer at once.
    with running_pool(["a"]) as pool:
        talk = Conversation(pool)
        assert talk.turn("one").status_code == 200
        assert talk.turn("two").status_code == 200  # "a" accepted its reasoning: surely its own
        accepted = pool.upstream.codex_requests("a")[-1].body
        for blob in blobs_in(accepted):
            del pool.upstream.owners.reasoning[blob]  # the backend no longer reads it (rotated keys)
        refused = pool.post(body=accepted, headers=SESSION)  # the same context again (a client retry)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_encrypted_content"
        assert len(pool.upstream.codex_requests("a")) == 3
