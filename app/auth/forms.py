from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from app.auth.models import Role


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in")


class _UserFields(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False),
                                            Length(max=320)])
    name = StringField("Name", validators=[Length(max=200)])
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value.capitalize()) for r in Role])


class UserForm(_UserFields):
    # A new account starts with the least surprising role: an admin can raise it on purpose.
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value.capitalize()) for r in Role],
                       default=Role.MARKETER.value)
    password = PasswordField("Password", validators=[DataRequired(), Length(min=10, max=200)])


class UserEditForm(_UserFields):
    active = BooleanField("Active (may sign in)")
    password = PasswordField("New password", validators=[
        Optional(), Length(min=10, max=200, message="A password needs at least 10 characters.")],
                             description="Leave empty to keep the password. At least 10 "
                                         "characters; setting one signs the user out everywhere.")


class ResetRequestForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])


class NewPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[
        DataRequired(),
        Length(min=10, max=200, message="A password needs at least 10 characters.")],
        description="At least 10 characters.")
    confirm = PasswordField("New password again", validators=[
        DataRequired(), EqualTo("password", message="The two passwords do not match.")])
