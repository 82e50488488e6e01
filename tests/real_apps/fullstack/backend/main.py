"""The API of a single-page app served from another origin (FRONTEND_ORIGIN): log in for a
JWT, read and edit your profile, list and add your items."""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from sms2fa_middleware.asgi import SMS2FAMiddleware
from sms2fa_middleware.fastapi import fastapi_identify

from . import db
from .security import CurrentUser, authenticate, create_access_token, get_current_user

FRONTEND_ORIGIN = os.environ.get("FRONTEND_ORIGIN", "http://localhost:5173")


@asynccontextmanager
async def lifespan(app):
    db.init_db()
    yield


app = FastAPI(title="Full Stack FastAPI", lifespan=lifespan)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserUpdate(BaseModel):
    full_name: str


class ItemCreate(BaseModel):
    title: str
    description: str | None = None


class Item(ItemCreate):
    id: int
    owner_id: int


class Message(BaseModel):
    message: str


@app.get("/api/utils/health-check/")
def health_check() -> bool:
    return True


@app.post("/api/login/access-token")
def login_access_token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    user = authenticate(form.username, form.password)
    if user is None:
        raise HTTPException(status_code=400, detail="Incorrect email or password")
    return Token(access_token=create_access_token(user["email"]))


@app.post("/api/logout")
async def logout(request: Request, response: Response, user: CurrentUser) -> Message:
    # End the user's verified SMS sessions everywhere, and drop this browser's cookie.
    guard = request.state.sms2fa_middleware
    await run_in_threadpool(guard.revoke, user.email)
    for name, value in await run_in_threadpool(guard.revoke_session, request):
        response.headers.append(name, value)
    return Message(message="Logged out")


@app.get("/api/users/me")
def read_user_me(user: CurrentUser) -> dict:
    return {"id": user.id, "email": user.email, "full_name": user.full_name}


@app.patch("/api/users/me")
def update_user_me(body: UserUpdate, user: CurrentUser) -> dict:
    db.update_user(user.email, body.full_name)
    return {"id": user.id, "email": user.email, "full_name": body.full_name}


@app.get("/api/items/")
def read_items(user: CurrentUser) -> list[Item]:
    return [Item(**dict(row)) for row in db.items_of(user.id)]


@app.post("/api/items/")
def create_item(body: ItemCreate, user: CurrentUser) -> Item:
    return Item(**dict(db.create_item(user.id, body.title, body.description)))


# SMS second factor on the user's own data (README: FastAPI). CORS is added last, so it
# runs first: it answers the SPA's preflights and adds its headers to our answers too.
app.add_middleware(
    SMS2FAMiddleware,
    protect=["/api/users/me", "/api/items"],
    anonymous="app",
    identify=fastapi_identify(get_current_user, auth_id="email", phone="phone"),
    trusted_origins=[FRONTEND_ORIGIN],
)
app.add_middleware(
    CORSMiddleware,
    allow_origins=[FRONTEND_ORIGIN],
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
)
