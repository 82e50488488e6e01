"""A FastAPI app with OAuth2 password login and JWT bearer tokens (as in FastAPI's security
tutorial) whose ``/users/me`` routes also need an SMS code.

Run it: ``uvicorn examples.fastapi_app:app`` (or ``python examples/fastapi_app.py``).
Without SMS2FA_SECRET_KEY it runs in development mode: codes are printed to the console.

A client logs in (``POST /token``), calls ``GET /users/me`` with its bearer token and gets
401 ``VerificationRequired`` with a ``challenge`` URL; it completes the challenge sending the
same bearer token, and from then on sends the verified-session cookie with its requests.
``POST /logout`` ends the verified session (the JWT itself stays valid until it expires, so
the next call needs a new code).
"""

import os
from datetime import datetime, timedelta, timezone
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pwdlib import PasswordHash
from pydantic import BaseModel

from sms2fa_middleware import Identity, Settings
from sms2fa_middleware.asgi import SMS2FAMiddleware
from sms2fa_middleware.starlette import check_routes, require_verified

JWT_KEY = os.environ.get("JWT_SECRET_KEY", "dev-only-jwt-secret-0123456789abcdef")
ALGORITHM = "HS256"
password_hash = PasswordHash.recommended()

# user name -> password hash, phone number on file; "carol" is disabled.
USERS = {
    "alice": {"hashed_password": password_hash.hash("wonderland"), "phone": "+12065550100"},
    "bob": {"hashed_password": password_hash.hash("builder"), "phone": "+12065550111"},
    "carol": {
        "hashed_password": password_hash.hash("singer"),
        "phone": "+12065550122",
        "disabled": True,
    },
}


class Token(BaseModel):
    access_token: str
    token_type: str


class User(BaseModel):
    username: str


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")
api = FastAPI(title="fastapi_app example")


def user_for_token(token: str) -> str | None:
    """The active user a bearer token names, else None."""
    try:
        username = jwt.decode(token, JWT_KEY, algorithms=[ALGORITHM]).get("sub")
    except jwt.InvalidTokenError:
        return None
    user = USERS.get(username) if isinstance(username, str) else None
    return username if user is not None and not user.get("disabled") else None


async def current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    username = user_for_token(token)
    if username is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Could not validate credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return User(username=username)


@api.post("/token")
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    user = USERS.get(form.username)
    if (
        user is None
        or user.get("disabled")
        or not password_hash.verify(form.password, str(user["hashed_password"]))
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expires = datetime.now(timezone.utc) + timedelta(minutes=30)
    token = jwt.encode({"sub": form.username, "exp": expires}, JWT_KEY, algorithm=ALGORITHM)
    return Token(access_token=token, token_type="bearer")  # noqa: S106 - the scheme's name


@api.post("/logout", status_code=204)
async def logout(user: Annotated[User, Depends(current_user)]) -> None:
    # revoke() writes to the database: off the event loop.
    await run_in_threadpool(app.revoke, user.username)


# Defence in depth: every route here also refuses (403) a request the middleware did not
# verify, so a route that the protect patterns miss fails closed.
me = APIRouter(prefix="/users/me", dependencies=[Depends(require_verified)])


@me.get("")
async def read_users_me(user: Annotated[User, Depends(current_user)]) -> User:
    return user


@me.get("/items")
async def read_own_items(
    user: Annotated[User, Depends(current_user)],
    verified: Annotated[Identity, Depends(require_verified)],
) -> list[dict]:
    return [{"item_id": "Foo", "owner": user.username, "verified_for": verified.auth_id}]


api.include_router(me)


# The routes' own scheme, not raising: identify reads the header exactly as current_user does.
# A hand-written parser that disagreed (say, on "Bearer  <token>" with two spaces) would call a
# request anonymous that the app then serves as the user.
optional_token = OAuth2PasswordBearer(tokenUrl="token", auto_error=False)


async def identify(request: Request) -> Identity | None:
    """Who is asking: the active user of the bearer token, with the phone on file."""
    token = await optional_token(request)
    username = user_for_token(token) if token else None
    return Identity(username, str(USERS[username]["phone"])) if username else None


PROTECT = ["/users/me"]
settings = Settings.from_env(development="SMS2FA_SECRET_KEY" not in os.environ)
# A plain wrapper: `app` is what the server runs, and what logout revokes through.
app = SMS2FAMiddleware(api, settings, protect=PROTECT, identify=identify)
check_routes(api, PROTECT)  # logs a warning for each route the patterns may leave open

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, port=int(os.environ.get("PORT", "8000")))
