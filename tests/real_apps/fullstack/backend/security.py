"""OAuth2 password flow with JWT bearer tokens (FastAPI's security tutorial)."""

import os
from datetime import datetime, timedelta, timezone
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from jwt.exceptions import InvalidTokenError
from pydantic import BaseModel

from . import db

SECRET_KEY = os.environ.get("JWT_SECRET", "change-this-jwt-secret-0123456789abcdef")
ALGORITHM = "HS256"
ACCESS_TOKEN_EXPIRE_MINUTES = 30

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/login/access-token")


class User(BaseModel):
    id: int
    email: str
    full_name: str = ""
    phone: str | None = None
    is_active: bool = True


def authenticate(email, password):
    row = db.get_user(email)
    if row is None or not db.password_hash.verify(password, row["hashed_password"]):
        return None
    return row


def create_access_token(subject, expires_delta=None):
    expire = datetime.now(timezone.utc) + (
        expires_delta or timedelta(minutes=ACCESS_TOKEN_EXPIRE_MINUTES)
    )
    return jwt.encode({"sub": subject, "exp": expire}, SECRET_KEY, algorithm=ALGORITHM)


def get_current_user(token: Annotated[str, Depends(oauth2_scheme)]) -> User:
    credentials_exception = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
    except InvalidTokenError:
        raise credentials_exception from None
    row = db.get_user(payload.get("sub") or "")
    if row is None:
        raise credentials_exception
    if not row["is_active"]:
        raise HTTPException(status_code=400, detail="Inactive user")
    return User(**{k: row[k] for k in ("id", "email", "full_name", "phone", "is_active")})


CurrentUser = Annotated[User, Depends(get_current_user)]
