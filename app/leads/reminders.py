"""Task reminders: when a task on a lead falls due, its owner gets one email.

`due` (periodic) marks each task that fell due as reminded and records a send job in the
outbox in the same commit; `send` delivers it through the mail ledger (`app.mail.deliver`,
key `task-reminder:<task id>`), so a redelivered job never sends twice. A task done before
its reminder leaves is not reminded, nor one whose owner was deactivated meanwhile.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, render_template

from app import mail, outbox
from app.db import db, utcnow
from app.jobs import job
from app.leads.work import LeadTask

BATCH = 500


def schedule_due(now=None) -> int:
    """Record a reminder for every open task that fell due; how many. Commits."""
    now = now or utcnow()
    tasks = db.session.scalars(
        sa.select(LeadTask).where(LeadTask.done_at.is_(None), LeadTask.reminded_at.is_(None),
                                  LeadTask.owner_id.is_not(None), LeadTask.due_at <= now)
        .order_by(LeadTask.due_at).limit(BATCH)).all()
    for task in tasks:
        task.reminded_at = now
        outbox.add("app.leads.reminders.send", task.id, queue_name="mail",
                   dedupe_key=f"task-reminder:{task.id}")
    db.session.commit()
    outbox.dispatch_committed()
    return len(tasks)


@job
def due() -> int:
    """Periodic entry point (registered in `app.leads.init_app`)."""
    return schedule_due()


def build(task: LeadTask) -> mail.Email:
    lead = task.lead
    url = f"{current_app.config['BASE_URL']}/admin/leads/{lead.id}"
    context = {"task": task, "lead": lead, "url": url}
    subject = f"Task due: {task.title}"[:200]
    return mail.new_email(task.owner.email, subject,
                          render_template("leads/mail/task_reminder.html", **context),
                          render_template("leads/mail/task_reminder.txt", **context))


def send(task_id: int) -> str:
    """The outbox job: one reminder, at most once. Returns what became of it."""
    task = db.session.get(LeadTask, task_id)
    if task is None or task.owner is None:
        return "missing"
    if task.done_at is not None:
        return "done before it was due"
    if not task.owner.active:  # left the team: the lead's name and link stay here
        return "owner deactivated"
    return mail.deliver(f"task-reminder:{task.id}", lambda: build(task),
                        lead_id=task.lead_id).status
