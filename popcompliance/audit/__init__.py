"""The audit log: who changed the inventory, the policies, the users and the API tokens, when,
from where, and what (popcompliance.audit.recorder)."""
