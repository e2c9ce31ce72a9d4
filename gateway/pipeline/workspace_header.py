"""The workspace header of a route rule: checked on the headers the upstream receives, and
forwarded as exactly the value that was checked.

A rule's ``workspace_header`` names the workspace a request is about. The gateway reads it from
the header set strip made for the upstream, where ``X_Workspace_Id`` and ``x-workspace-id`` are
the same header (CGI-style servers fold them into one variable, see
:func:`gateway.pipeline.strip.canonical_name`): two copies in any spellings are refused. After
the check the set holds the header once, under the configured name, with the checked value, so
the upstream cannot read another one.
"""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import duplicate_header, hop_by_hop_header, missing_header
from gateway.identity import Identity
from gateway.pipeline.authz import RouteRule, authorize
from gateway.pipeline.strip import canonical_name
from gateway.request import ProxiedRequest

Headers = CIMultiDict[str] | CIMultiDictProxy[str]


def _spellings(headers: Headers, key: str) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.items() if canonical_name(name) == key]


def workspace_header(
    name: str, received: Headers, forwarded: CIMultiDict[str] | None, bound: bool
) -> str | None:
    """The value of the ``name`` header, ``None`` when there is none and the caller is not
    ``bound`` to a workspace (a WORKSPACE token): for one that is, 400 ``missing_header``,
    because the app would pick a workspace (a default, a cookie) that keygate cannot check.

    Read from ``forwarded`` (the stripped set that goes upstream), which is left holding
    exactly ``name: <value>``; without one (``/_keygate/auth``, which forwards nothing), from
    ``received``. Raises 400 ``duplicate_header`` for more than one copy in any spelling, and
    400 ``invalid_header`` when the client sent the header but strip dropped it because its
    ``Connection`` named it: the decision would rest on a header the upstream never sees.
    """
    key = canonical_name(name)
    found = _spellings(received if forwarded is None else forwarded, key)
    if len(found) > 1:
        # Which copy would the app read? Refuse rather than guess.
        raise duplicate_header(name)
    if not found:
        if forwarded is not None and _spellings(received, key):
            raise hop_by_hop_header(name)
        if bound:
            raise missing_header(name)
        return None
    spelling, sent = found[0]
    # Without the whitespace around it (RFC 9110 §5.5), as every server reads it; llhttp keeps
    # trailing blanks that aiohttp's parser drops.
    value = sent.strip(" \t")
    if forwarded is not None and (spelling != name or value != sent):
        del forwarded[spelling]
        forwarded[name] = value
    return value


def authorize_request(
    identity: Identity,
    rule: RouteRule,
    path_workspace: str | None,
    request: ProxiedRequest,
    forwarded: CIMultiDict[str] | None,
) -> None:
    """:func:`gateway.pipeline.authz.authorize` for ``request``: the workspace is the one its
    path binds (``path_workspace``), or the rule's :func:`workspace_header`, read from the
    request's headers (and pinned in ``forwarded``, the stripped headers; ``None`` when
    nothing is forwarded)."""
    workspace = path_workspace
    if rule.workspace_header:
        bound = identity.token_scope == "WORKSPACE"
        received = request.headers  # only read here: the relay makes them when asked
        workspace = workspace_header(rule.workspace_header, received, forwarded, bound)
    authorize(identity, rule, workspace)
