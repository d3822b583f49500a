"""The core's models, imported in one place so SQLAlchemy resolves relationships between them.

Each feature package imports its own models in its `init_app`, so by the time the factory has
run (as under `flask db ...`), Alembic's autogenerate sees the whole schema.
"""

from app.auth.models import User  # noqa: F401
from app.leads.bulk import BulkJob  # noqa: F401
from app.leads.imports import LeadImport  # noqa: F401
from app.leads.models import Event, Lead, StageChange  # noqa: F401
from app.leads.saved_views import SavedView  # noqa: F401
from app.leads.work import LeadNote, LeadTask  # noqa: F401
from app.mail.ledger import MailDelivery  # noqa: F401
from app.outbox import OutboxJob  # noqa: F401
