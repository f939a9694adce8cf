"""EC2/IAM helpers shared by the steps every engine may run: the direct engine's
(planner.engines.direct) and the data plane's (planner.engines.dataplane, prewarm).

    AwsOps(spec, aws, ssm, plan_id=plan.plan_id, overrides=overrides,
           clock=lambda: datetime.now(UTC), endpoint_url=None)

- `spec`: the Spec the plan was made from; `aws`: an AwsContext (its clients carry
  botocore's standard/adaptive retry mode); `ssm`: an SsmTransport.
- `plan_id` seeds the ClientTokens; `overrides` (rules.Overrides) is what the operator
  allowed; `clock` gives the time for fresh rule checks of creates and updates.
- `endpoint_url` (default: aws.endpoint_url) set means an emulator: waiters poll every
  second and a missing AWS-managed policy is tolerated.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from planner import rules
from planner.engines.base import StepBlocked, StepFailed
from planner.iamnames import data_policy, data_policy_arn, project_role_name
from planner.live import TAG_ADDRESS, TAG_CLIENT_TOKEN, TAG_PROJECT, LiveState
from planner.plan import Change, ResourceType
from planner.spec import Spec
from planner.tags import owner_tags

EMULATOR_WAIT = {"Delay": 1, "MaxAttempts": 120}
LIVE_VOLUME_STATES = ("creating", "available", "in-use")
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")
PROFILE_PROPAGATION_TRIES = 8                # run_instances right after a new profile
PROFILE_PROPAGATION_DELAY = 5.0


def _error_code(e: Exception) -> str:
    return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))


class AwsOps:
    """EC2/IAM helpers for the steps of one apply (thread-safe): clients, waiters, tags,
    describes by id or address, ClientToken idempotency, the project's profile."""

    def __init__(self, spec: Spec, aws: Any, ssm: Any, *, plan_id: str,
                 overrides: rules.Overrides,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 endpoint_url: str | None = None):
        self.spec = spec
        self.aws = aws
        self.ssm = ssm
        self.plan_id = plan_id
        self.overrides = overrides
        self.clock = clock
        self.endpoint_url = endpoint_url if endpoint_url is not None else aws.endpoint_url
        self.emulated = bool(self.endpoint_url)
        self._lock = threading.Lock()
        self._resource_locks: dict[str, threading.Lock] = {}
        self._profile: str | None = None
        self._profile_new = False
        # The uploader's own progress bar; off by default (apply shows its own display).
        self.upload_progress = False
        # kind -> ClientToken -> (address, raw): what creates of this plan already made
        self._tokens: dict[str, dict[str, tuple[str | None, dict[str, Any]]]] = {}
        self._created_ids: dict[str, str] = {}      # address -> id made by this run

    @property
    def ec2(self) -> Any:
        return self.aws.ec2

    def now(self) -> datetime:
        return self.clock()

    def resource_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._resource_locks.setdefault(key, threading.Lock())

    def wait(self, client: Any, waiter: str, *, config: Mapping[str, int] | None = None,
             **kwargs: Any) -> None:
        """A boto3 waiter; polls every second against an emulator."""
        cfg = dict(EMULATOR_WAIT) if self.emulated else dict(config or {})
        w = client.get_waiter(waiter)
        if cfg:
            w.wait(WaiterConfig=cfg, **kwargs)
        else:
            w.wait(**kwargs)

    def client_token(self, change: Change, purpose: str = "") -> str:
        """Stable per plan, address and kind (create vs replace): <= 64 characters."""
        raw = f"{self.plan_id}|{change.address}|{change.kind}|{purpose}"
        return f"{self.plan_id[:16]}-{hashlib.sha256(raw.encode()).hexdigest()[:40]}"

    def owner_tags(self, address: str, own: Mapping[str, str] | None = None, *,
                   persistent: bool = False, protect: bool = False,
                   on_delete: str | None = None) -> dict[str, str]:
        """DESIGN section 3's tags, over the spec's default and own tags."""
        return owner_tags(self.spec, address, own, persistent=persistent, protect=protect,
                          on_delete=on_delete)

    def set_tags(self, resource_id: str, tags: Mapping[str, str | None]) -> None:
        """Set tags; a None value deletes the tag."""
        put = {k: v for k, v in tags.items() if v is not None}
        drop = [k for k, v in tags.items() if v is None]
        if put:
            self.ec2.create_tags(Resources=[resource_id], Tags=tag_list(put))
        if drop:
            self.ec2.delete_tags(Resources=[resource_id], Tags=[{"Key": k} for k in drop])

    def describe_volume(self, volume_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            vols = self.ec2.describe_volumes(VolumeIds=[volume_id]).get("Volumes", [])
        except ClientError as e:
            if _error_code(e) in ("InvalidVolume.NotFound", "InvalidVolumeID.Malformed"):
                return None
            raise
        return vols[0] if vols else None

    def describe_instance(self, instance_id: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as e:
            if _error_code(e) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        found = [i for r in resp.get("Reservations", ()) for i in r.get("Instances", ())]
        return found[0] if found else None

    def _owned_filters(self, address: str, *extra: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"Name": f"tag:{TAG_PROJECT}", "Values": [self.spec.project]},
                {"Name": f"tag:{TAG_ADDRESS}", "Values": [address]}, *extra]

    def volumes_at(self, address: str) -> list[dict[str, Any]]:
        resp = self.ec2.describe_volumes(Filters=self._owned_filters(
            address, {"Name": "status", "Values": list(LIVE_VOLUME_STATES)}))
        return list(resp.get("Volumes", []))

    def instances_at(self, address: str, *extra: dict[str, Any]) -> list[dict[str, Any]]:
        """Live (not terminated) instances of this project tagged with ADDRESS, narrowed
        by EXTRA filters: one describe call."""
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=self._owned_filters(address, {"Name": "instance-state-name",
                                                  "Values": list(LIVE_INSTANCE_STATES)},
                                        *extra))
        return [i for page in pages for r in page.get("Reservations", ())
                for i in r.get("Instances", ())]

    def note_created(self, address: str, resource_id: str) -> None:
        """What a create step of this run made at ADDRESS: later steps (attachments,
        mounts) describe it by id, as if the plan had known it."""
        with self._lock:
            self._created_ids[address] = resource_id

    def _id_for(self, address: str, known: str | None) -> str | None:
        if known:
            return known
        with self._lock:
            return self._created_ids.get(address)

    def volume_id_of(self, name: str, known: str | None = None) -> str:
        """The id of volume.NAME: `known` when given or created by this run, else the one
        live volume tagged so."""
        vid = self._id_for(f"volume.{name}", known)
        if vid:
            return vid
        found = self.volumes_at(f"volume.{name}")
        return str(_the_one("volume", name, found)["VolumeId"])

    def volume_at(self, name: str, known: str | None = None) -> dict[str, Any] | None:
        """volume.NAME described: by id when known or created by this run (None when it
        is gone), else the one live volume tagged so (StepFailed for none or several),
        in one call either way."""
        vid = self._id_for(f"volume.{name}", known)
        if vid:
            return self.describe_volume(vid)
        return _the_one("volume", name, self.volumes_at(f"volume.{name}"))

    def instance_at(self, name: str, known: str | None = None) -> dict[str, Any] | None:
        """instance.NAME described, like volume_at."""
        iid = self._id_for(f"instance.{name}", known)
        if iid:
            return self.describe_instance(iid)
        return _the_one("instance", name, self.instances_at(f"instance.{name}"))

    def instance_id_of(self, name: str, known: str | None = None) -> str:
        iid = self._id_for(f"instance.{name}", known)
        if iid:
            return iid
        found = self.instances_at(f"instance.{name}")
        return str(_the_one("instance", name, found)["InstanceId"])

    def fresh_live(self, volumes: Iterable[Mapping[str, Any]] = (),
                   instances: Iterable[Mapping[str, Any]] = (),
                   modifications: Iterable[Mapping[str, Any]] = ()) -> LiveState:
        from planner.aws.read import instance_from_aws, modification_from_aws, volume_from_aws
        from planner.tags import with_recorded_modifications

        live_volumes = tuple(volume_from_aws(v) for v in volumes)
        return LiveState(
            project=self.spec.project, region=self.aws.region, read_at=self.now(),
            volumes=live_volumes,
            instances=tuple(instance_from_aws(i) for i in instances),
            modifications=tuple(with_recorded_modifications(
                live_volumes, (modification_from_aws(m) for m in modifications))),
        )

    def recheck(self, change: Change, live: LiveState) -> None:
        """The rules again on fresh state; StepBlocked when any applies."""
        blocks = rules.recheck(change, live, self.spec, self.now(), self.overrides)
        if blocks:
            raise StepBlocked(change.address, blocks)

    def check_unique(self, change: Change) -> None:
        """The `duplicate` rule just before a volume or instance step: what carries the
        change's address is described again (one call); StepBlocked when another live
        resource does (a create: when anything does)."""
        from planner.plan import base_address

        address = base_address(change.address)
        if change.type is ResourceType.VOLUME:
            live = self.fresh_live(volumes=self.volumes_at(address))
        else:
            live = self.fresh_live(instances=self.instances_at(address))
        blocks = rules.duplicate_recheck(change, live, self.spec, self.overrides)
        if blocks:
            raise StepBlocked(change.address, blocks)

    def project_profile(self) -> str:
        """The project's SSM instance profile, created once when missing."""
        with self._lock:
            if self._profile is None:
                from planner.aws.iam import ensure_instance_profile
                from planner.aws.session import account_of, is_loopback

                name = project_role_name(self.spec.project)
                # the data policy is created here only on an emulator on this machine
                # (it enforces no IAM); on AWS an admin creates it and the plan checks it
                local = is_loopback(self.endpoint_url)
                created = ensure_instance_profile(
                    self.aws.iam, role=name, profile=name, project=self.spec.project,
                    data_policy_arn=data_policy_arn(account_of(self.aws), self.spec.project),
                    data_document=data_policy(self.spec) if local else None,
                    emulator=self.emulated)
                if created and not self.emulated:
                    self.aws.iam.get_waiter("instance_profile_exists").wait(
                        InstanceProfileName=name)
                self._profile, self._profile_new = name, bool(created)
            return self._profile

    def run_instance(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """run_instances; a brand-new instance profile takes a few seconds to reach EC2."""
        import time

        from botocore.exceptions import ClientError

        tries = PROFILE_PROPAGATION_TRIES if self._profile_new and not self.emulated else 1
        for attempt in range(tries):
            try:
                resp = self.ec2.run_instances(**kwargs)
                inst = dict(resp["Instances"][0])
            except ClientError as e:
                propagating = (_error_code(e) == "InvalidParameterValue"
                               and "iam instance profile" in str(e).lower())
                if not propagating or attempt == tries - 1:
                    raise
                time.sleep(PROFILE_PROPAGATION_DELAY)
                continue
            if kwargs.get("ClientToken") and _retried(resp):
                self.drop_lost_twins("instance", str(kwargs["ClientToken"]),
                                     str(inst["InstanceId"]))
            if kwargs.get("ClientToken"):
                specs = kwargs.get("TagSpecifications", ())
                tags: list[dict[str, str]] = next(
                    (t["Tags"] for t in specs if t["ResourceType"] == "instance"), [])
                address = tags_of({"Tags": tags}).get(TAG_ADDRESS)
                if address:
                    self.remember_created("instance", address, kwargs["ClientToken"], inst)
            return inst
        raise AssertionError("unreachable")

    def drop_lost_twins(self, kind: str, token: str, keep: str) -> list[str]:
        """A create botocore retried may have run twice: its first answer was lost, and
        moto (unlike AWS) ignores ClientToken. The twins carry this step's own token (its
        tag, or the instance's ClientToken), were made seconds ago and hold nothing: keep
        the one answered, remove the others. Returns the ids removed."""
        project = {"Name": f"tag:{TAG_PROJECT}", "Values": [self.spec.project]}
        if kind == "volume":
            vols = self.ec2.describe_volumes(Filters=[
                project, {"Name": f"tag:{TAG_CLIENT_TOKEN}", "Values": [token]}])["Volumes"]
            twins = [str(v["VolumeId"]) for v in vols if v["VolumeId"] != keep
                     and v.get("State") in ("creating", "available")]
            for vid in twins:
                self.wait(self.ec2, "volume_available", VolumeIds=[vid])
                self.ec2.delete_volume(VolumeId=vid)
            return twins
        pages = self.ec2.get_paginator("describe_instances").paginate(Filters=[
            project, {"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}])
        twins = [str(i["InstanceId"]) for page in pages for r in page.get("Reservations", ())
                 for i in r.get("Instances", ())
                 if i.get("ClientToken") == token and i["InstanceId"] != keep]
        if twins:
            self.ec2.terminate_instances(InstanceIds=twins)
        return twins

    def instance_by_token(self, address: str, token: str) -> dict[str, Any] | None:
        return self._by_token("instance", address, token)

    def volume_by_token(self, address: str, token: str) -> dict[str, Any] | None:
        return self._by_token("volume", address, token)

    def remember_created(self, kind: str, address: str, token: str,
                         raw: Mapping[str, Any]) -> None:
        """A create's answer, so a retry of the same step in this run finds it too."""
        self.created_by_token(kind)[token] = (address, dict(raw))

    def _by_token(self, kind: str, address: str, token: str) -> dict[str, Any] | None:
        found = self.created_by_token(kind).get(token)
        return found[1] if found is not None and found[0] == address else None

    def created_by_token(self, kind: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
        """What an earlier attempt of a plan already created, by ClientToken (moto ignores
        ClientToken, and a re-run after a crash must not create twice): one batched,
        paginated describe per kind and engine, never one per resource. Each token is
        used by one step of one run, so what this run creates need not be seen."""
        with self.resource_lock(f"tokens:{kind}"):
            if kind not in self._tokens:
                project = {"Name": f"tag:{TAG_PROJECT}", "Values": [self.spec.project]}
                if kind == "volume":
                    pages = self.ec2.get_paginator("describe_volumes").paginate(Filters=[
                        project, {"Name": "tag-key", "Values": [TAG_CLIENT_TOKEN]},
                        {"Name": "status", "Values": list(LIVE_VOLUME_STATES)}])
                    self._tokens[kind] = {
                        tags_of(v)[TAG_CLIENT_TOKEN]: (_address_of(v), dict(v))
                        for page in pages for v in page.get("Volumes", ())}
                else:
                    pages = self.ec2.get_paginator("describe_instances").paginate(Filters=[
                        project, {"Name": "instance-state-name",
                                  "Values": list(LIVE_INSTANCE_STATES)}])
                    self._tokens[kind] = {
                        str(i["ClientToken"]): (_address_of(i), dict(i))
                        for page in pages for r in page.get("Reservations", ())
                        for i in r.get("Instances", ()) if i.get("ClientToken")}
            return self._tokens[kind]

    def delete_nothing(self, change: Change) -> dict[str, str]:
        """Data lives on: sync/prewarm/dataset deletes leave the bytes where they are."""
        return {"result": "nothing to delete"}


def _address_of(raw: Mapping[str, Any]) -> str | None:
    return tags_of(raw).get(TAG_ADDRESS)


def _the_one(rtype: str, name: str, found: list[dict[str, Any]]) -> dict[str, Any]:
    """The single live resource tagged RTYPE.NAME; StepFailed for none or several."""
    if len(found) != 1:
        what = f"no live {rtype}" if not found else f"{len(found)} live {rtype}s"
        raise StepFailed(f"{rtype}.{name}: {what} tagged with this address")
    return dict(found[0])


def _retried(resp: Mapping[str, Any]) -> bool:
    """True when botocore sent the call more than once (an answer may have been lost)."""
    return bool((resp.get("ResponseMetadata") or {}).get("RetryAttempts"))


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


def tags_of(raw: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags", ()) or ()}
