// One member's card: identity and keys from its chain record, what it stated at registration (compose
// hash, device) and the KMS root that admitted it, each with whether the policy allows it now, the chain's
// standing verdict, its last attestation check, what its own /healthz says, its sponsorship spend.

import { useEffect, useRef } from "preact/hooks";
import type { AttestationStatus, DashboardView, MemberCard } from "../model.ts";
import { formatEth, when } from "./format.ts";

function NotAvailable(props: { reason: string | undefined }) {
  return (
    <span class="na">
      not available <small>({props.reason ?? "not provided"})</small>
    </span>
  );
}

function attestationText(a: AttestationStatus): string {
  const evidence = a.evidence === null ? "" : ` (${a.evidence} evidence)`;
  const last = a.lastVerifiedAt === null ? "never verified here" : `last verified ${when(a.lastVerifiedAt)}`;
  switch (a.state) {
    case "verified":
      return `verified${evidence} at ${when(a.checkedAt)}`;
    case "refused":
      return `REFUSED${evidence} at ${when(a.checkedAt)}: ${a.detail ?? ""}; ${last}`;
    case "unreachable":
      return `no attestation at ${when(a.checkedAt)}: ${a.detail ?? ""}; ${last}`;
    default:
      return `not checked yet (${a.detail ?? "pending"})`;
  }
}

export function MemberCardPanel(props: {
  readonly member: MemberCard;
  readonly view: DashboardView;
  readonly onClose: () => void;
}) {
  const { member: m, view } = props;
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => close.current?.focus(), [m.memberId]);
  const h = m.health;
  const allowed = (ok: boolean | null) => (ok === null ? "unknown" : ok ? "allowed now" : "NOT allowed now");
  return (
    <aside
      class="card"
      aria-label={`member ${m.memberId}`}
      data-testid="member-card"
      onKeyDown={(e) => {
        if (e.key === "Escape") props.onClose();
      }}
    >
      <header>
        <h2>Member #{m.memberId}</h2>
        <button type="button" ref={close} onClick={props.onClose} aria-label="close the member card">
          ×
        </button>
      </header>
      <dl>
        <dt>status</dt>
        <dd>
          {m.status}
          {m.endedAt ? ` since ${when(m.endedAt)} (reason ${m.endReason})` : ""}
        </dd>
        <dt>app id</dt>
        <dd class="mono">
          {m.appId}{" "}
          <em>{m.appIdRevokedAt ? `revoked ${when(m.appIdRevokedAt)}` : allowed(m.appIdAllowed)}</em>
        </dd>
        <dt>mesh IP</dt>
        <dd class="mono">{m.meshIp}</dd>
        <dt>registered</dt>
        <dd>{when(m.registeredAt)}</dd>
        <dt>member key</dt>
        <dd class="mono">{m.memberKey}</dd>
        <dt>WireGuard key</dt>
        <dd class="mono">{m.wireguardKey}</dd>
        <dt>identity key</dt>
        <dd class="mono">{m.identityKey}</dd>
        <dt>admitting KMS root</dt>
        <dd class="mono">
          {m.kmsRoot ?? "—"} <em>{allowed(m.kmsRootAllowed)}</em>
        </dd>
        <dt>compose hash</dt>
        <dd class="mono">
          {m.composeHash ?? "unrecorded (registered before claims were kept)"}{" "}
          {m.composeHash === null ? null : <em>{allowed(m.composeHashAllowed)}</em>}
        </dd>
        <dt>device</dt>
        <dd class="mono">
          {m.deviceId ?? (m.deviceFingerprint === null ? "unrecorded" : `fingerprint ${m.deviceFingerprint}`)}{" "}
          <em>{m.deviceRevokedAt ? `REVOKED ${when(m.deviceRevokedAt)}` : allowed(m.deviceAllowed)}</em>
        </dd>
        <dt>standing</dt>
        <dd>
          {m.standing === "good"
            ? "good: the policy would admit it again now"
            : m.standing === "not-active"
              ? "not active"
              : m.standing === "unrecorded"
                ? "unrecorded: it registered before claims were kept"
                : `NOT standing (${m.standing}): peers drop it; attestmesh evict --stale evicts it`}
        </dd>
        <dt>attestation</dt>
        <dd data-testid="member-attestation">{attestationText(m.attestation)}</dd>
        <dt>CSK epoch held</dt>
        <dd>
          {h === null ? (
            <NotAvailable reason="no /healthz URL known for this member" />
          ) : h.cskEpoch === null ? (
            "none"
          ) : (
            `${h.cskEpoch}${h.cskAcquired ? "" : " (stale)"} — chain is at ${view.csk.current?.epoch ?? "—"}`
          )}
        </dd>
        <dt>health</dt>
        <dd>
          {h === null
            ? "no /healthz URL known"
            : h.reachable
              ? `${h.phase}; peers handshaken ${h.handshakenPeers}/${h.desiredPeers}, live ${h.livePeers}; ${h.converged ? "converged" : "not converged"}; indexer ${h.indexerSubscribed ? "subscribed" : "not subscribed"}${h.lastError ? `; last error ${h.lastError}` : ""}`
              : `unreachable at ${when(h.checkedAt)}`}
        </dd>
        <dt>sponsorship spend</dt>
        <dd>
          {view.spend.available === false ? (
            <NotAvailable reason={view.spend.reason} />
          ) : m.spendWei === null ? (
            "no member account seen"
          ) : (
            `${formatEth(m.spendWei)} (account ${m.account})`
          )}
        </dd>
      </dl>
      {m.status === "active" ? (
        <p class="hint">
          To evict it: <code>attestmesh evict {m.memberId}</code>
        </p>
      ) : null}
    </aside>
  );
}
