"""Deletions the CiviCRM connector holds back, and what a person does about them.

When CiviCRM stops listing more of a table's records than ``max_deleted_share`` allows (or
lists none), the connector marks none of them deleted: a lost permission or ACL looks the
same as a mass deletion (see ``_guard`` in source.py). It keeps the number in its dlt
resource state and puts a hold on the member's load (connectors/holds.py), so the member is
held back with this fix until a run sees the records again or a person raises the share.
Counts only: no id or name is ever kept there.
"""

from __future__ import annotations

# dlt resource-state keys written by source.py; also the names of their holds.
HELD = "held_deletions"
HELD_PARENTS = "held_parent_deletions"

FIX = (
    "CiviCRM stopped listing more records than connector.max_deleted_share allows, which a "
    "lost permission or ACL also causes. Check the API user's permissions first; if the "
    "records were deleted on purpose, set connector.max_deleted_share: 1 for one run."
)
