// One membership at a time: register (or find the registration), run the mesh for that membership
// until the reconciler sees it end (evicted, or left) or shutdown, stop the mesh, and register again.
// main.ts supplies the steps; this module only sequences them and holds the current member id.
import type { Logger } from "./log.ts";
import type { Registration } from "./register.ts";
import type { StatusStore } from "./status.ts";

export interface MembershipSteps {
  /** Registers, or finds the active registration; undefined when shutdown cut it short. */
  register(): Promise<Registration | undefined>;
  /** The membership began: start reconciling now. */
  began(memberId: bigint): void;
  /** Runs the mesh layer for this membership until `signal` aborts. */
  runMesh(memberId: bigint, signal: AbortSignal): Promise<void>;
  /** The membership ended: forget what belonged to it (the CSK). */
  ended(): void;
}

export interface MembershipCycle {
  /** The current membership's member id; undefined between memberships. */
  memberId(): bigint | undefined;
  /** Called by the reconciler when the chain shows this membership ended. */
  membershipEnded(): void;
  /** Runs memberships one after another until `signal` aborts. */
  run(steps: MembershipSteps): Promise<void>;
}

export function createMembershipCycle(options: {
  readonly status: StatusStore;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}): MembershipCycle {
  const { status, logger, signal } = options;
  let memberId: bigint | undefined;
  let endCurrent: (() => void) | undefined;
  return {
    memberId: () => memberId,
    membershipEnded() {
      memberId = undefined;
      status.update({ memberId: undefined });
      endCurrent?.();
    },
    async run(steps) {
      while (!signal.aborted) {
        const registration = await steps.register();
        if (registration === undefined) return;
        const id = registration.memberId;
        memberId = id;
        status.update({ memberId: id });
        logger.info(
          { memberId: id.toString(), txHash: registration.txHash ?? null },
          registration.submitted
            ? "registered as a member"
            : "already an active member with these keys; not registering again",
        );
        const ended = new Promise<void>((resolve) => {
          endCurrent = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
        steps.began(id);
        const membership = new AbortController();
        const stopMembership = () => membership.abort();
        signal.addEventListener("abort", stopMembership, { once: true });
        const meshDone = steps
          .runMesh(id, membership.signal)
          .catch((err: unknown) => logger.error({ err }, "mesh layer failed"));
        await ended;
        membership.abort();
        signal.removeEventListener("abort", stopMembership);
        steps.ended();
        // On shutdown the mesh layer winds down by itself (a CSK commit in flight may take a while).
        if (!signal.aborted) await meshDone;
      }
    },
  };
}
