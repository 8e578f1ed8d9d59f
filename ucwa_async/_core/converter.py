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

The event channel's parser does not go through cattrs: :func:`make_builder` generates,
per model class, a function that builds an instance straight from a raw property dict with
the same hooks and names (cattrs' structure costs a copy of the dict with the base keys
added, then the attrs ``__init__``; on a 500-event batch that was a third of the parse).
:func:`slot_init` is the attrs ``__init__`` without its per-field ``object.__setattr__``.

``CONVERTER`` is the single module-level instance; nothing else here is mutable.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ucwa_async._core.errors import DecodeError

T = TypeVar("T")

__all__ = [
    "BASE_FIELDS",
    "CONVERTER",
    "base_key",
    "camel_case",
    "make_builder",
    "make_converter",
    "slot_init",
    "slot_setters",
]

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


# -- fast construction ------------------------------------------------------------------


def slot_setters(cls: type, names: typing.Iterable[str]) -> tuple[Callable[[Any, Any], None], ...]:
    """The ``__set__`` of each named slot of an attrs slotted class (frozen or not)."""
    out = []
    for name in names:
        descriptor = getattr(cls, name, None)
        if not isinstance(descriptor, types.MemberDescriptorType):
            raise TypeError(f"{cls.__name__}.{name} is not a slot")
        out.append(descriptor.__set__)
    return tuple(out)


def _check_slots(cls: Any) -> list[attrs.Attribute[Any]]:
    """The fields of ``cls``, after checking that they are all of its slots (an instance
    built slot by slot must be complete: an attrs change adding a hidden slot, a cached
    hash say, would otherwise leave it unset) and that none has a validator."""
    if not attrs.has(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not an attrs slotted class")
    fields = list(attrs.fields(cls))
    slots = {s for k in cls.__mro__ for s in k.__dict__.get("__slots__", ())}
    slots.discard("__weakref__")
    if slots != {a.name for a in fields}:
        raise TypeError(f"{cls.__name__}'s slots {sorted(slots)} are not its fields")
    for field in fields:
        if field.validator is not None:
            raise TypeError(f"{cls.__name__}.{field.name} has a validator: not supported")
    return fields


def _generate(name: str, params: list[str], body: list[str], env: dict[str, Any]) -> Any:
    source = f"def {name}({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in body)
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<ucwa_async generated {name}>", "exec"), env, namespace)
    return namespace[name]


def _set_slots(
    cls: Any, fields: list[attrs.Attribute[Any]], values: list[str], env: dict[str, Any]
) -> list[str]:
    """Lines setting each field's slot of ``o`` to the expression in ``values``, through
    the field's converter if it has one."""
    lines = []
    setters = slot_setters(cls, [a.name for a in fields])
    for i, (field, setter, value) in enumerate(zip(fields, setters, values, strict=True)):
        env[f"_s{i}"] = setter
        if field.converter is not None:
            env[f"_c{i}"] = field.converter
            value = f"_c{i}({value})"
        lines.append(f"_s{i}(o, {value})")
    return lines


def slot_init(cls: type[T], *names: str) -> Callable[..., T]:
    """``cls(*values)`` with the values of the fields ``names`` (every field, in this
    order: naming them keeps the call sites right if the class's field order changes;
    none given: ``attrs.fields`` order), no defaults. The instance is made with
    ``object.__new__`` and each slot set through its descriptor, field converters
    applied (validators: none allowed)."""
    fields = _check_slots(cls)
    by_name = {a.name: a for a in fields}
    if names:
        if sorted(names) != sorted(by_name):
            raise TypeError(f"{cls.__name__}: {names} are not its fields {sorted(by_name)}")
        fields = [by_name[name] for name in names]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params = [f"f_{a.name}" for a in fields]
    body = ["o = _new(_cls)", *_set_slots(cls, fields, params, env), "return o"]
    built: Callable[..., T] = _generate(f"init_{cls.__name__}", params, body, env)
    return built


def _fast_hook(t: Any) -> tuple[Callable[[Any], Any], str | None]:
    """A typed field's hook, and the class of a raw value taken as it is (None: always
    the hook)."""
    if _is_opt_str(t):
        return _opt_str, "str"
    if _is_opt_int(t):
        # bool is an int subclass: the class test sends True to the hook, which refuses it.
        return _opt_int, "int"
    if _is_str_tuple(t):
        return _str_tuple, None  # a list to make a tuple of
    raise TypeError(f"no fast hook for {t!r}")


def make_builder(cls: type[T]) -> Callable[..., T]:
    """``build(rel, href, links, embedded, properties, embedded_as, raw)``: what
    ``CONVERTER.structure`` makes of ``raw`` with the base fields given (its ``"@..."``
    keys), without the dict copy: typed fields read from their camelCase keys in ``raw``
    through the same hooks, a value already of its class (a str for ``str | None``)
    taken as it is."""
    fields = _check_slots(cls)
    attrs.resolve_types(cls)  # type: ignore[type-var]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "str": str, "int": int}
    body = ["o = _new(_cls)", "get = raw.get"]
    values = []
    for i, field in enumerate(attrs.fields(cls)):  # type: ignore[arg-type]
        if field.name in BASE_FIELDS:
            values.append(field.name)
            continue
        hook, exact = _fast_hook(field.type)
        if isinstance(field.default, attrs.Factory) or hook(None) != field.default:  # type: ignore[arg-type]
            # A missing key would give the default in cattrs, hook(None) here.
            raise TypeError(f"{cls.__name__}.{field.name}: its default is not hook(None)")
        env[f"_h{i}"] = hook
        body.append(f"v{i} = get({camel_case(field.name)!r})")
        if exact is None:
            body.append(f"v{i} = _h{i}(v{i})")
        else:
            body.append(f"if v{i} is not None and v{i}.__class__ is not {exact}:")
            body.append(f"    v{i} = _h{i}(v{i})")
        values.append(f"v{i}")
    body += [*_set_slots(cls, fields, values, env), "return o"]
    params = ["rel", "href", "links", "embedded", "properties", "embedded_as", "raw"]
    built: Callable[..., T] = _generate(f"build_{cls.__name__}", params, body, env)
    return built
