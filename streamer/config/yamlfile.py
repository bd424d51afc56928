"""Reading a config file: bounded, safe YAML into a plain dict.

Contract: ``read_mapping(path)`` returns the file's top-level mapping (``{}`` for an empty
file) or raises ``ConfigError`` with one line that names the file and, where it can, the line
or the key. Guards, each because a user's file once broke the old loader:
- size: at most ``MAX_BYTES`` (a config is a few KB; this bounds everything below);
- encoding: UTF-8 (a BOM is fine); other bytes are reported with their offset;
- YAML: ``SafeLoader`` only (no Python tags); duplicate keys are refused (PyYAML keeps the
  last one silently); aliases are counted and the document's expanded size is measured on
  the composed node graph before anything is constructed, so a "billion laughs" document
  (aliases of aliases) is refused in microseconds instead of growing to gigabytes, and
  recursive aliases are refused too. The key under which the expansion happens is named.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from streamer.errors import ConfigError

MAX_BYTES = 1 << 20
MAX_ALIASES = 1000
MAX_NODES = 100_000  # values in the document after alias expansion


class _TooBig(Exception):
    pass


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses duplicate mapping keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self.aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ConfigError(f"more than {MAX_ALIASES} YAML aliases")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode):
                    k = key_node.value
                    if k in seen:
                        raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key "
                                          f"{k[:60]!r}")
                    seen.add(k)
        return super().construct_mapping(node, deep=deep)


def _sizes(root: Node) -> dict[int, int]:
    """Expanded value count of every node (aliases share nodes: memoised by id, so this is
    linear in the composed graph, not in the expansion). Raises _TooBig on a cycle or when a
    node expands beyond MAX_NODES."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    # Iterative post-order walk: the graph can be deep, Python's stack is not.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            on_path.discard(nid)
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > MAX_NODES:
                size[nid] = total
                raise _TooBig(node)
            size[nid] = total
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise _TooBig(node)  # a recursive alias expands forever
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return size


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for kv in node.value for n in kv]
    return []


def _key_of(root: Node, culprit: Node) -> str:
    """Dotted key path from the root mapping to the first mapping entry that contains
    ``culprit`` (searched breadth-first through mappings only, bounded)."""
    path: list[str] = []
    node = root
    for _ in range(16):
        if not isinstance(node, MappingNode):
            break
        nxt = None
        for k, v in node.value:
            if isinstance(k, ScalarNode) and _contains(v, culprit):
                path.append(str(k.value)[:60])
                nxt = v
                break
        if nxt is None:
            break
        node = nxt
    return ".".join(path)


def _contains(node: Node, target: Node, budget: int = 10_000) -> bool:
    seen: set[int] = set()
    stack = [node]
    while stack and budget > 0:
        n = stack.pop()
        budget -= 1
        if n is target:
            return True
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend(_children(n))
    return False


def read_mapping(path: Path) -> dict:
    where = f"config file {path}"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{where} is a directory, not a file") from None
    except OSError as e:
        raise ConfigError(f"{where} cannot be read: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_BYTES // 1024} KiB (a config is a few KB)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                          f"{e.start})") from None
    loader = None
    try:
        loader = BoundedLoader(text)  # the reader checks for unprintable characters here
        node = loader.get_single_node()
        if node is None:
            return {}
        try:
            _sizes(node)
        except _TooBig as big:
            key = _key_of(node, big.args[0])
            raise ConfigError(f"{key + ': ' if key else where + ': '}YAML aliases expand to more "
                              f"than {MAX_NODES} values (recursive or nested aliases)") from None
        data = loader.construct_document(node)
    except ConfigError as e:
        msg = str(e)
        if msg.startswith("line ") or msg.startswith("more than"):
            raise ConfigError(f"{where} {msg}" if msg.startswith("line") else f"{where}: {msg}") from None
        raise
    except yaml.reader.ReaderError as e:
        raise ConfigError(f"{where}: not valid YAML (unprintable character #x{e.character:04x} at "
                          f"offset {e.position})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or ""
        detail = f" ({problem[:80]})" if problem else ""
        raise ConfigError(f"{where}{at}: not valid YAML{detail}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got "
                          f"{type(data).__name__}")
    return data
