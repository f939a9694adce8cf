"""The plan's closed vocabularies: string enums whose values are the plan file's JSON
form. planner.plan re-exports them (`from planner.plan import Action` stays the way in);
they live here so the file schemas (planner.fileschemas) can be built from them without
importing the plan module that checks files against those schemas.
"""

from __future__ import annotations

from enum import StrEnum

FORMAT_VERSION = "1"


class Action(StrEnum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class ChangeKind(StrEnum):
    """What a change does as a whole: its actions read together (the summary's keys)."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"


class ResourceType(StrEnum):
    DATASET = "dataset"
    VOLUME = "volume"
    PREWARM = "prewarm"
    INSTANCE = "instance"
    ATTACHMENT = "attachment"
    MOUNT = "mount"
    SYNC = "sync"


class Reason(StrEnum):
    NO_CHANGE = "no_change"
    CREATE_BECAUSE_MISSING = "create_because_missing"
    CREATE_BECAUSE_DELETED_OUTSIDE = "create_because_deleted_outside"
    UPDATE_BECAUSE_DRIFT = "update_because_drift"
    REPLACE_BECAUSE_CANNOT_UPDATE = "replace_because_cannot_update"
    REPLACE_BECAUSE_DEPENDENCY_REPLACED = "replace_because_dependency_replaced"
    DELETE_BECAUSE_NOT_IN_SPEC = "delete_because_not_in_spec"
    DELETE_BECAUSE_DESTROY = "delete_because_destroy"
    ADOPT_BECAUSE_IMPORT = "adopt_because_import"
    UPLOAD_BECAUSE_SOURCE_CHANGED = "upload_because_source_changed"
    PREWARM_BECAUSE_DATASET_CHANGED = "prewarm_because_dataset_changed"
    ATTACH_BECAUSE_NOT_ATTACHED = "attach_because_not_attached"
    MOUNT_BECAUSE_NOT_MOUNTED = "mount_because_not_mounted"
    MOUNT_BECAUSE_VOLUME_GREW = "mount_because_volume_grew"
    SYNC_BECAUSE_DATASET_CHANGED = "sync_because_dataset_changed"
    VERIFY_BECAUSE_EXISTING_EBS = "verify_because_existing_ebs"
    DELETE_BECAUSE_DUPLICATE = "delete_because_duplicate"
    DELETE_BECAUSE_TEMPORARY = "delete_because_temporary"


class Rule(StrEnum):
    PERSISTENT = "persistent"
    PROTECTED = "protected"
    MIN_AGE = "min-age"
    ATTACHED = "attached"
    TRAINING_RUNNING = "training-running"
    DEPENDS_ON_BLOCKED = "depends-on-blocked"
    AZ_MISMATCH = "az-mismatch"
    SHRINK = "shrink"
    MODIFY_PENDING = "modify-pending"
    COST = "cost"
    EMPTY_DATASET = "empty-dataset"     # a warning only: the listing found no object
    DUPLICATE = "duplicate"             # two live resources carry one address
    UNSAFE_KEY = "unsafe-key"           # a dataset key that is not a safe relative path
    FOREIGN_OBJECTS = "foreign-objects"  # a warning only: stage objects trainctl keeps
    DELETED_OUTSIDE = "deleted-outside"  # a warning only: what a create replaces, gone
    UNKNOWN_LIVE = "unknown-live"       # a warning only: a spec value the plan cannot check


SUMMARY_KEYS = (*(k.value for k in ChangeKind), "blocked")
