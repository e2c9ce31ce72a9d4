"""Test data several test files share: spoofed identity headers and route-rule files.

Kept as literals on purpose: they are what a client or an operator writes, so they must not be
derived from the code under test.
"""

from __future__ import annotations

#: A user id no real user has, sent by clients pretending to be someone.
SPOOFED = "00000000-0000-0000-0000-00000000beef"

#: The identity headers the gateway writes by default, in ``IdentityHeaderNames`` field order.
IDENTITY_HEADERS = (
    "X-Keygate-User-Id",
    "X-Keygate-User-Email",
    "X-Keygate-Workspace-Id",
    "X-Keygate-Token-Id",
    "X-Keygate-Token-Scope",
    "X-Keygate-Auth-Method",
    "X-Keygate-External-Id",
)

#: One spoofed user id per spelling a case- or separator-blind check might let through
#: (CGI-style servers read ``_`` as ``-``), by test id.
SPOOFED_USER_ID_SPELLINGS: dict[str, list[tuple[str, str]]] = {
    "exact": [("X-Keygate-User-Id", SPOOFED)],
    "lower": [("x-keygate-user-id", SPOOFED)],
    "upper": [("X-KEYGATE-USER-ID", SPOOFED)],
    "underscore": [("X_Keygate_User_Id", SPOOFED)],
    "underscore-lower": [("x_keygate_user_id", SPOOFED)],
}

#: A client claiming to be an organization-wide token.
SPOOFED_TOKEN_CLAIM = [
    ("X-Keygate-Auth-Method", "token"),
    ("X-Keygate-Token-Scope", "ORGANIZATION"),
]

#: Route rules: ``/private/`` needs a credential, ``/public/`` none, everything else optional.
PRIVATE_AND_PUBLIC_ROUTES = """
[[route]]
prefix = "/private/"
auth = "required"

[[route]]
prefix = "/public/"
auth = "none"
"""

#: Route rules: ``/private/`` needs a credential, ``/org-reports/`` an ORGANIZATION token.
PRIVATE_AND_ORGANIZATION_ROUTES = """
[[route]]
prefix = "/private/"
auth = "required"

[[route]]
prefix = "/org-reports/"
scope = "ORGANIZATION"
"""
