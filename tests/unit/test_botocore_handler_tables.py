"""The zygote's copy-on-write tables of botocore event handlers (bootstrap._copy_handler_tables_on_write).

Every botocore client copies its session's table of handlers; in a warm environment those
copies share their nodes until one side changes them. Whatever a run does with its tables,
each must answer exactly as botocore's own full copies do.
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
