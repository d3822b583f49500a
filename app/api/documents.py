"""How a lead reads in the API's answers and in outgoing webhooks."""

from __future__ import annotations

from typing import Any

from app.leads.models import Lead, StageChange


def lead_document(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id, "email": lead.email_display, "first_name": lead.first_name or "",
        "last_name": lead.last_name or "", "company": lead.company or "",
        "job_title": lead.job_title or "", "phone": lead.phone or "",
        "country": lead.country or "", "attributes": dict(lead.attributes or {}),
        "stage": lead.stage, "fit_score": lead.fit_score or 0,
        "engagement_score": round(lead.engagement_now, 2),  # as of now (it decays)
        "owner": lead.owner.email if lead.owner is not None else None,
        "created_at": lead.created_at, "updated_at": lead.updated_at,
        "unsubscribed_at": lead.unsubscribed_at, "bounced_at": lead.bounced_at,
    }


def stage_change_document(change: StageChange) -> dict[str, Any]:
    return {"id": change.id, "from_stage": change.from_stage, "to_stage": change.to_stage,
            "reason": change.reason, "actor": change.actor_label,
            "changed_at": change.changed_at}
