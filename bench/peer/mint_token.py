"""Mint an access token for the Python peer (bench/peer/app.py): an HS256 JWT with `sub` (careport's
users.id), `role` (doctor, nurse, admin or patient) and `exp`, signed with $PEER_JWT_SECRET.

    PEER_JWT_SECRET=… python bench/peer/mint_token.py USER_ID ROLE [TTL_SECONDS]   # prints the token
"""

import os
import sys
import time
import uuid

import jwt

ROLES = ("doctor", "nurse", "admin", "patient")


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3) or argv[1] not in ROLES:
        sys.exit(f"usage: mint_token.py USER_ID {{{','.join(ROLES)}}} [TTL_SECONDS]")
    user, role = str(uuid.UUID(argv[0])), argv[1]
    ttl = int(argv[2]) if len(argv) == 3 else 3600
    print(jwt.encode({"sub": user, "role": role, "exp": int(time.time()) + ttl}, os.environ["PEER_JWT_SECRET"], "HS256"))


if __name__ == "__main__":
    main(sys.argv[1:])
