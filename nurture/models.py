"""Sequences, their steps, who is enrolled where, the send ledger and the suppression list."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import JSONType, Model, UTCDateTime, utcnow


class SequenceStatus(str, enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"


class Reenroll(str, enum.Enum):
    NEVER = "never"
    AFTER_FINISHED = "after_finished"


class FailurePolicy(str, enum.Enum):
    """What a permanently failed email does to the lead's journey."""

    CONTINUE = "continue"
    STOP = "stop"


class StepKind(str, enum.Enum):
    EMAIL = "email"
    WAIT = "wait"
    BRANCH = "branch"
    GOAL = "goal"


class Condition(str, enum.Enum):
    OPENED_PREVIOUS = "opened_previous"
    CLICKED_PREVIOUS = "clicked_previous"
    VISITED_URL_PATTERN = "visited_url_pattern"
    SCORE_AT_LEAST = "score_at_least"
    FIELD_EQUALS = "field_equals"
    IN_STAGE = "in_stage"


class EnrollmentStatus(str, enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"
    EXITED = "exited"


# Statuses that count as "in the sequence": at most one such enrollment per lead and sequence.
LIVE_STATUSES = (EnrollmentStatus.ACTIVE.value, EnrollmentStatus.PAUSED.value)


class SendStatus(str, enum.Enum):
    CLAIMED = "claimed"  # a worker owns the attempt; the provider may or may not have it
    SENT = "sent"  # the provider accepted it
    RETRY = "retry"  # a retryable failure; the engine tries again after a back-off
    FAILED = "failed"  # permanent: never retried
    UNKNOWN = "unknown"  # a worker died mid-attempt: reconcile from provider events


class SuppressionReason(str, enum.Enum):
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    SPAMREPORT = "spamreport"


ALL_DAYS = [0, 1, 2, 3, 4, 5, 6]  # Monday = 0, as datetime.weekday()
# Where a new sequence lets a lead go: sales has them (SQL), they bought, or they are not a fit.
DEFAULT_EXIT_STAGES = ("sql", "customer", "disqualified")


class Sequence(Model):
    __tablename__ = "nurture_sequences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(12), default=SequenceStatus.DRAFT.value,
                                        index=True)
    # Send window, in the lead's local time (or `timezone` when the lead's is unknown).
    window_days: Mapped[list[int]] = mapped_column(JSONType, default=lambda: list(ALL_DAYS))
    window_start_hour: Mapped[int] = mapped_column(default=0)
    window_end_hour: Mapped[int] = mapped_column(default=24)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    # At most one nurture email to a lead per this many hours (0: no cap).
    frequency_cap_hours: Mapped[int] = mapped_column(default=0)
    reenroll: Mapped[str] = mapped_column(sa.String(20), default=Reenroll.NEVER.value)
    on_permanent_failure: Mapped[str] = mapped_column(sa.String(12),
                                                      default=FailurePolicy.CONTINUE.value)
    # Enroll everyone who submits this form (a plain id: nurture does not own forms).
    trigger_form_id: Mapped[int | None] = mapped_column(index=True)
    # Enroll every lead entering this stage (e.g. "recycled" back from sales), "" for none.
    trigger_stage: Mapped[str] = mapped_column(sa.String(20), default="")
    # Leave the sequence when the lead reaches one of these stages.
    exit_stages: Mapped[list[str]] = mapped_column(JSONType,
                                                   default=lambda: list(DEFAULT_EXIT_STAGES))
    # The consent purpose (app.privacy) a lead must have granted to be enrolled; None: any lead.
    required_purpose_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("consent_purposes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    steps: Mapped[list[Step]] = relationship(
        back_populates="sequence", order_by="Step.position", cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        return self.status == SequenceStatus.ACTIVE.value

    def __repr__(self) -> str:
        return f"<Sequence {self.id} {self.name!r} {self.status}>"


class Step(Model):
    __tablename__ = "nurture_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nurture_sequences.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(sa.String(12))
    # email
    subject: Mapped[str] = mapped_column(sa.String(300), default="")
    body: Mapped[str] = mapped_column(sa.Text, default="")
    body_format: Mapped[str] = mapped_column(sa.String(10), default="markdown")  # or "html"
    # wait: a duration, or "next <weekday> <HH:MM>" in the lead's time zone
    wait_seconds: Mapped[int | None] = mapped_column()
    wait_until: Mapped[str] = mapped_column(sa.String(40), default="")
    # branch: a condition, its parameters, and where to go (None: the next step)
    condition: Mapped[str] = mapped_column(sa.String(30), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    yes_step_id: Mapped[int | None] = mapped_column()
    no_step_id: Mapped[int | None] = mapped_column()
    # goal: reaching one of these stages ends the journey successfully; a lead who arrives here
    # without it waits `wait_seconds` (default GOAL_WAIT_SECONDS) for it, then moves on.
    goal_stages: Mapped[list[str]] = mapped_column(JSONType, default=list)

    sequence: Mapped[Sequence] = relationship(back_populates="steps")

    @property
    def label(self) -> str:
        if self.kind == StepKind.EMAIL.value:
            return f"Email: {self.subject or '(no subject)'}"
        if self.kind == StepKind.WAIT.value:
            return f"Wait {self.wait_until or _duration(self.wait_seconds or 0)}"
        if self.kind == StepKind.BRANCH.value:
            return f"Branch: {self.condition.replace('_', ' ')}"
        return "Goal: " + ", ".join(self.goal_stages or [])

    def __repr__(self) -> str:
        return f"<Step {self.id} {self.kind} #{self.position}>"


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class Enrollment(Model):
    """One lead's journey through one sequence. `next_run_at` is when the tick should look at it
    next: the current step's due time, a send-window opening, a retry, or a claim's lease."""

    __tablename__ = "nurture_enrollments"
    __table_args__ = (
        # The database, not the code, guarantees one live journey per lead and sequence.
        sa.Index("uq_nurture_enrollments_live", "lead_id", "sequence_id", unique=True,
                 sqlite_where=sa.text("status IN ('active', 'paused')"),
                 postgresql_where=sa.text("status IN ('active', 'paused')")),
        sa.Index("ix_nurture_enrollments_due", "status", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"),
                                         index=True)
    sequence_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nurture_sequences.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("nurture_steps.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(sa.String(12), default=EnrollmentStatus.ACTIVE.value)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # see ix_..._due
    step_entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which tick (or kick) claimed it last; lets a single claimer find what it claimed.
    claim_token: Mapped[str | None] = mapped_column(sa.String(32))
    source: Mapped[str] = mapped_column(sa.String(200), default="")
    campaign_id: Mapped[int | None] = mapped_column()
    exit_reason: Mapped[str | None] = mapped_column(sa.String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lead = relationship("Lead")
    sequence: Mapped[Sequence] = relationship()
    step: Mapped[Step | None] = relationship()

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def __repr__(self) -> str:
        return f"<Enrollment {self.id} lead={self.lead_id} seq={self.sequence_id} {self.status}>"


class Send(Model):
    """The ledger: one row per (enrollment, email step), written before the provider is called,
    so a redelivered job or a second worker never sends the same step twice."""

    __tablename__ = "nurture_sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("nurture_enrollments.id", ondelete="CASCADE")
    )
    # A plain id: removing a step from a sequence keeps its history.
    step_id: Mapped[int] = mapped_column(index=True)
    lead_id: Mapped[int] = mapped_column(sa.ForeignKey("leads.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(sa.String(10), default=SendStatus.CLAIMED.value)
    subject: Mapped[str] = mapped_column(sa.String(300), default="")
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(200))
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    enrollment: Mapped[Enrollment] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "step_id"),
        sa.Index("ix_nurture_sends_lead_sent", "lead_id", "sent_at"),
    )


class EmailFirst(Model):
    """The day each sequence email first had each kind of event the Email report counts (sent,
    a person's open, a machine's click, ...). The report counts an email once per kind, on
    that day; this table is how a later day knows it was counted before, without reading the
    event log again, and it outlives a prune of the log. Kept by the email rollup's `prepare`
    (`nurture.reports.record_firsts`). Ids and metric names only: no personal data."""

    __tablename__ = "nurture_email_firsts"

    send_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    metric: Mapped[str] = mapped_column(sa.String(24), primary_key=True)
    day: Mapped[date] = mapped_column(sa.Date)


class Suppression(Model):
    """Addresses no nurture email may go to, whatever their lead record says."""

    __tablename__ = "nurture_suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)  # normalised identity
    reason: Mapped[str] = mapped_column(sa.String(20))
    source: Mapped[str] = mapped_column(sa.String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
