// One member's card: identity and keys from its chain record, the KMS root that admitted it and whether
// the policy allows it now, what its own /healthz says, its sponsorship spend. Fields the project cannot
// fill yet say so and why.

import { useEffect, useRef } from "preact/hooks";
import type { DashboardView, MemberCard } from "../model.ts";
import { formatEth, when } from "./format.ts";

function NotAvailable(props: { reason: string | undefined }) {
  return (
    <span class="na">
      not available <small>({props.reason ?? "not provided"})</small>
    </span>
  );
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
  const na = view.notAvailable;
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
        <dd>
          <NotAvailable reason={na.composeHash} />
        </dd>
        <dt>device</dt>
        <dd>
          <NotAvailable reason={na.device} />
        </dd>
        <dt>attestation</dt>
        <dd>
          <NotAvailable reason={na.attestation} />
        </dd>
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
