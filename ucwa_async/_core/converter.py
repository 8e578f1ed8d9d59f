"""The one cattrs converter factory.

Sans-IO. :func:`make_converter` builds a converter that maps the typed fields of the
resource models (snake_case attributes) to and from UCWA's camelCase property names,
with lenient scalar coercion (XML carries text, so ``"5"`` may stand for 5 and a
capitalised ``True`` may stand for the text "True"). Wrong shapes (a mapping where a
string belongs, a non-numeric count) raise :class:`DecodeError`, never a cattrs or
Python exception.

The factory is generic over attrs classes so that this module does not import the
models (which import it): fields named in :data:`BASE_FIELDS` are not read from camelCase
keys but from ``"@<name>"`` keys that the model parser fills in itself.

``CONVERTER`` is the single module-level instance; nothing else here is mutable.
"""

from __future__ import annotations

import typing
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ucwa_async._core.errors import DecodeError

__all__ = ["BASE_FIELDS", "CONVERTER", "base_key", "camel_case", "make_converter"]

# The Resource base class's fields: filled by the model parser, not by camelCase lookup.
BASE_FIELDS = frozenset({"rel", "href", "links", "embedded", "properties", "embedded_as"})


def base_key(name: str) -> str:
    """The structuring key of a base field; '@' cannot collide with what we set last."""
    return "@" + name


def camel_case(name: str) -> str:
    """``total_recipients_count`` -> ``totalRecipientsCount``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _opt_str(value: Any, _type: Any = None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):  # XML decoded "True"/"False" text: give the text back
        return "True" if value else "False"
    if isinstance(value, int | float):
        return str(value)
    raise DecodeError(f"expected a string, got {type(value).__name__}")


def _opt_int(value: Any, _type: Any = None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise DecodeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise DecodeError(f"expected an integer, got {value[:40]!r}") from None
    raise DecodeError(f"expected an integer, got {type(value).__name__}")


def _str_tuple(value: Any, _type: Any = None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # one item written as a bare value
        return (value,)
    if not isinstance(value, list | tuple):
        raise DecodeError(f"expected a list of strings, got {type(value).__name__}")
    out = []
    for item in value:
        text = _opt_str(item)
        if text is not None:
            out.append(text)
    return tuple(out)


def _passthrough(value: Any, _type: Any = None) -> Any:
    return value


def _is_opt_str(t: Any) -> bool:
    return bool(t == (str | None))


def _is_opt_int(t: Any) -> bool:
    return bool(t == (int | None))


def _is_str_tuple(t: Any) -> bool:
    return typing.get_origin(t) is tuple and typing.get_args(t) == (str, ...)


def _has_base_fields(cls: Any) -> bool:
    return attrs.has(cls) and {a.name for a in attrs.fields(cls)} >= BASE_FIELDS


def make_converter() -> cattrs.Converter:
    """A converter for the resource models.

    ``structure(mapping, SomeResource)`` reads typed fields from camelCase keys and base
    fields from ``base_key(name)`` keys; ``unstructure(resource)`` returns the canonical
    dict (properties, typed fields in camelCase, ``rel``, ``_links``, ``_embedded``).
    """
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook_func(_is_opt_str, _opt_str)
    conv.register_structure_hook_func(_is_opt_int, _opt_int)
    conv.register_structure_hook_func(_is_str_tuple, _str_tuple)

    def structure_factory(cls: Any) -> Any:
        attrs.resolve_types(cls)
        overrides: dict[str, Any] = {
            a.name: override(rename=base_key(a.name), struct_hook=_passthrough)
            if a.name in BASE_FIELDS
            else override(rename=camel_case(a.name))
            for a in attrs.fields(cls)
        }
        return make_dict_structure_fn(cls, conv, **overrides)

    def unstructure_factory(cls: Any) -> Any:
        attrs.resolve_types(cls)
        overrides: dict[str, Any] = {
            a.name: override(omit=True)
            if a.name in BASE_FIELDS
            else override(rename=camel_case(a.name))
            for a in attrs.fields(cls)
        }
        typed = make_dict_unstructure_fn(cls, conv, **overrides)

        def unstructure(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = dict(obj.properties)
            for key, value in typed(obj).items():
                if value is None or value == ():
                    continue
                out[key] = list(value) if isinstance(value, tuple) else value
            if obj.rel is not None:
                out["rel"] = obj.rel
            links: dict[str, Any] = {}
            for link in obj.links:
                old = links.get(link.rel)
                entry = {"href": link.href}
                if link.title is not None:
                    entry["title"] = link.title
                if old is None:
                    links[link.rel] = entry
                elif isinstance(old, list):
                    old.append(entry)
                else:
                    links[link.rel] = [old, entry]
            if obj.href is not None and "self" not in links:
                links["self"] = {"href": obj.href}
            if links:
                out["_links"] = links
            embedded: dict[str, Any] = {}
            for child in obj.embedded:
                key = child.embedded_as or child.rel or ""
                old = embedded.get(key)
                value = conv.unstructure(child)
                if old is None:
                    embedded[key] = value
                elif isinstance(old, list):
                    old.append(value)
                else:
                    embedded[key] = [old, value]
            if embedded:
                out["_embedded"] = embedded
            return out

        return unstructure

    conv.register_structure_hook_factory(_has_base_fields, structure_factory)
    conv.register_unstructure_hook_factory(_has_base_fields, unstructure_factory)
    return conv


CONVERTER: cattrs.Converter = make_converter()
