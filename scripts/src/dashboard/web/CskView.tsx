// The CSK epochs as a timeline, newest first: when each opened, whose departure opened it, who committed.

import type { DashboardView } from "../model.ts";
import { short, when } from "./format.ts";

export function CskView(props: { readonly view: DashboardView }) {
  const { csk } = props.view;
  const epochs = [...csk.epochs].reverse();
  return (
    <section aria-label="CSK epochs" class="csk">
      <p>
        Current epoch:{" "}
        {csk.current === null
          ? "none yet"
          : csk.current.commitment === null
            ? `${csk.current.epoch}, not committed yet (a live member commits it)`
            : `${csk.current.epoch}, committed by member #${csk.current.committer} (commitment ${short(csk.current.commitment)})`}
      </p>
      {epochs.length === 0 ? <p>No CSK events yet.</p> : null}
      <ol class="timeline" data-testid="csk-timeline">
        {epochs.map((e) => (
          <li key={e.epoch} data-epoch={e.epoch}>
            <h3>Epoch {e.epoch}</h3>
            <p>
              {e.causeMemberId === null
                ? `the first epoch${e.openedAt ? `, opened ${when(e.openedAt)} at block ${e.openedBlock}` : ""}`
                : `opened ${when(e.openedAt)} at block ${e.openedBlock} by the departure of member #${e.causeMemberId}${e.causeStatus ? ` (${e.causeStatus})` : ""}`}
            </p>
            {e.commits.length === 0 ? (
              <p class="warn">no commitment yet</p>
            ) : (
              <ul>
                {e.commits.map((c) => (
                  <li key={`${c.block}-${c.memberId}`}>
                    committed by member #{c.memberId} at {when(c.at)} (block {c.block}),{" "}
                    <span class="mono">{short(c.commitment)}</span>
                  </li>
                ))}
              </ul>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}
