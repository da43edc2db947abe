"""What the zygote shares of botocore between a run's clients (bootstrap._warm_aws_models).

In a warm environment a client's copy of its session's handler table shares nodes until
one side changes them, aliasers with the default aliases share their cache of aliased
names, and endpoint rule sets are built once per service. Whatever a run does, each must
answer exactly as botocore's own structures do.
"""

import copy
import random

import pytest
from botocore import hooks

from runtime import bootstrap

PARTS = ("before-call", "after-call", "needs-retry", "s3", "sts", "ssm", "*", "GetObject", "AssumeRole")


@pytest.fixture
def shared_trie():
    class SharedTrie(hooks._PrefixTrie):  # a subclass: botocore's own class stays as it is in this process
        pass

    bootstrap._copy_handler_tables_on_write(SharedTrie)
    return SharedTrie


def _outcome(call):
    try:
        return ("ok", call())
    except Exception as error:  # the same error, of the same type, as botocore's
        return (type(error).__name__, str(error))


def test_copies_answer_as_botocore_copies_do_whatever_is_added_or_removed(shared_trie):
    rng = random.Random(20261130)
    keys = sorted({".".join(rng.choice(PARTS) for _ in range(rng.randint(1, 4))) for _ in range(60)})
    ours, botocores = [shared_trie()], [hooks._PrefixTrie()]  # table i of one family mirrors table i of the other
    handlers = iter(range(1_000_000))
    added: list[list[tuple[str, int]]] = [[]]
    for step in range(6000):
        i = rng.randrange(len(ours))
        choice = rng.random()
        if choice < 0.1 and len(ours) < 40:
            ours.append(copy.copy(ours[i]))
            botocores.append(copy.copy(botocores[i]))
            added.append(list(added[i]))
        elif choice < 0.7:
            key, handler, section = rng.choice(keys), next(handlers), rng.choice((0, 1, 2))
            ours[i].append_item(key, handler, section=section)
            botocores[i].append_item(key, handler, section=section)
            added[i].append((key, handler))
        else:
            # Mostly a handler the table holds; sometimes one it does not, or a key it never had.
            if added[i] and rng.random() < 0.8:
                key, handler = added[i].pop(rng.randrange(len(added[i])))
            else:
                key, handler = rng.choice(keys) + rng.choice(("", ".absent")), -1
            assert _outcome(lambda: ours[i].remove_item(key, handler)) == \
                _outcome(lambda: botocores[i].remove_item(key, handler))
        if step % 50 == 0 or step == 5999:
            for mine, theirs in zip(ours, botocores):
                for key in keys:
                    assert list(mine.prefix_search(key)) == list(theirs.prefix_search(key)), (step, key)


def test_a_handler_registered_in_a_clients_copy_is_in_no_other_table(shared_trie, monkeypatch):
    monkeypatch.setattr(hooks, "_PrefixTrie", shared_trie)
    session_table = hooks.HierarchicalEmitter()

    def builtin(**_kwargs):
        pass

    def the_clients_own(**_kwargs):
        pass

    session_table.register("before-call.s3.GetObject", builtin)
    first, second = copy.copy(session_table), copy.copy(session_table)
    first.register("before-call.s3", the_clients_own)
    first.unregister("before-call.s3.GetObject", builtin)
    assert [h for h in first._handlers.prefix_search("before-call.s3.GetObject")] == [the_clients_own]
    for table in (session_table, second):
        assert list(table._handlers.prefix_search("before-call.s3.GetObject")) == [builtin]
    # The shared nodes were never changed in place: the session's table answers as before.
    session_table.register("before-call.s3.GetObject", the_clients_own)
    assert list(second._handlers.prefix_search("before-call.s3.GetObject")) == [builtin]


def test_aliasers_with_the_default_aliases_share_names_and_alias_as_botocore_does(monkeypatch):
    class SharingAliaser(hooks.EventAliaser):
        pass

    bootstrap._share_default_alias_names(SharingAliaser)
    events = [f"{stage}.{name}.{op}" for name in hooks.EVENT_ALIASES
              for stage in ("before-call", "creating-client-class", "needs-retry") for op in ("", "GetObject")]
    events += ["before-call.s3.GetObject", "after-call.sts.AssumeRole", "before-parameter-build.ssm"]
    first = SharingAliaser(hooks.HierarchicalEmitter())
    botocores = hooks.EventAliaser(hooks.HierarchicalEmitter())
    assert [first._alias_event_name(e) for e in events] == [botocores._alias_event_name(e) for e in events]
    # A client's copy (botocore copies the aliases) shares the names worked out so far.
    client = copy.copy(first)
    assert client._alias_name_cache is first._alias_name_cache and client._alias_name_cache
    # Other aliases: a cache of their own, and their own answers.
    other = SharingAliaser(hooks.HierarchicalEmitter(), {"s3": "renamed"})
    assert other._alias_name_cache is not first._alias_name_cache
    assert other._alias_event_name("before-call.s3.GetObject") == "before-call.renamed.GetObject"
    assert first._alias_event_name("before-call.s3.GetObject") == "before-call.s3.GetObject"


def test_a_rule_set_is_built_once_per_services_data_and_resolves_as_botocores(monkeypatch):
    import botocore.loaders
    from botocore import endpoint_provider

    loader = botocore.loaders.create_loader()
    s3 = loader.load_service_model("s3", "endpoint-rule-set-1")
    sts = loader.load_service_model("sts", "endpoint-rule-set-1")
    partitions = loader.load_data("partitions")
    botocores = endpoint_provider.EndpointProvider(s3, partitions)
    monkeypatch.setattr(endpoint_provider, "RuleSet", endpoint_provider.RuleSet)  # put back after the test
    bootstrap._build_rule_sets_once(endpoint_provider)

    one, two = endpoint_provider.EndpointProvider(s3, partitions), endpoint_provider.EndpointProvider(s3, partitions)
    assert one.ruleset is two.ruleset
    assert endpoint_provider.EndpointProvider(sts, partitions).ruleset is not one.ruleset
    assert endpoint_provider.EndpointProvider(copy.deepcopy(s3), partitions).ruleset is not one.ruleset
    for parameters in ({"Region": "us-east-1", "Bucket": "reports"},
                       {"Region": "eu-west-1", "Bucket": "reports", "ForcePathStyle": True},
                       {"Region": "us-west-2", "Endpoint": "http://127.0.0.1:9", "Bucket": "b", "ForcePathStyle": True}):
        assert two.resolve_endpoint(**parameters) == botocores.resolve_endpoint(**parameters)


def _sockets():
    """This process's open sockets, by their inode."""
    import os

    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor, closed by now
        if target.startswith("socket:"):
            found.add(target)
    return found


def test_a_warm_up_responder_that_cannot_start_its_thread_leaves_no_socket_open(monkeypatch):
    # Under a Function's process limit the zygote (or a spare) may have no thread to spare: the
    # responder's listening socket must not stay open, to be inherited by every run.
    import threading

    def refuse(self):
        raise RuntimeError("can't start new thread")

    before = _sockets()
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError):
        bootstrap._CannedResponder()
    assert _sockets() <= before


def test_the_warm_up_steps_get_their_answers_from_the_responder_and_leave_no_thread():
    # The steps the zygote takes twice and each spare once (bootstrap._aws_steps), end to end.
    import threading

    threads = threading.active_count()
    responder = bootstrap._CannedResponder()
    try:
        steps = sum(1 for _step in bootstrap._aws_steps(responder.url))
    finally:
        responder.close()
    assert steps == 5 and threading.active_count() == threads
