// The sponsorship decision for one ERC-7677 request: the policy, then the member's daily caps, then
// the signed approval. A final approval reserves its maximum cost in the cap ledger (checked and
// recorded in one transaction); the spend watcher later converts it into what the EntryPoint actually
// charged, or it lapses with the approval's window. Every decision is logged with its reason and
// counted in the metrics.

import type { Logger } from "pino";
import type { Address, LocalAccount } from "viem";
import {
  type ApprovalWindow,
  type ApprovedOperation,
  encodePaymasterData,
  STUB_APPROVAL_SIGNATURE,
  signApproval,
} from "./approval.ts";
import type { CapLedger } from "./caps.ts";
import type { SponsorMetrics } from "./metrics.ts";
import { evaluatePolicy, type PolicyChain, type PolicyConfig, type RefusalReason } from "./policy.ts";

/** Gas the paymaster's validation may use (it hashes the operation and recovers one signature). */
export const PAYMASTER_VERIFICATION_GAS = 60_000n;
/** The paymaster returns no context, so the EntryPoint never calls postOp. */
export const PAYMASTER_POST_OP_GAS = 0n;

export type SponsorMethod = "stub" | "final";

export interface SponsorRequest {
  readonly userOp: ApprovedOperation;
  readonly entryPoint: Address;
  readonly chainId: number;
  /** The ERC-7677 context the wallet sent (`{ memberSignature }`). */
  readonly context?: unknown;
}

export type SponsorAnswer =
  | {
      readonly approved: true;
      readonly paymaster: Address;
      readonly paymasterData: `0x${string}`;
      readonly paymasterVerificationGasLimit: bigint;
      readonly paymasterPostOpGasLimit: bigint;
    }
  | { readonly approved: false; readonly reason: RefusalReason; readonly detail: string };

export interface SponsorService {
  decide(method: SponsorMethod, request: SponsorRequest): Promise<SponsorAnswer>;
}

export function createSponsorService(options: {
  readonly policy: PolicyConfig;
  readonly chain: PolicyChain;
  readonly paymaster: Address;
  readonly signer: LocalAccount;
  readonly caps: CapLedger;
  readonly validitySeconds: number;
  readonly logger: Logger;
  readonly metrics: SponsorMetrics;
  readonly now?: () => Date;
}): SponsorService {
  const { logger, metrics } = options;
  const now = options.now ?? (() => new Date());
  return {
    async decide(method, request) {
      const stop = metrics.decisionSeconds.startTimer({ method });
      // The approval covers the paymaster gas limits, so they are fixed here, not taken from the caller.
      const userOp: ApprovedOperation = {
        ...request.userOp,
        paymasterVerificationGasLimit: PAYMASTER_VERIFICATION_GAS,
        paymasterPostOpGasLimit: PAYMASTER_POST_OP_GAS,
      };
      const at = now();
      let decision = await evaluatePolicy({ ...request, userOp }, options.policy, options.chain);
      const nowSeconds = Math.floor(at.getTime() / 1000);
      const window: ApprovalWindow = {
        validAfter: Math.max(0, nowSeconds - 60),
        validUntil: nowSeconds + options.validitySeconds,
      };
      // The check and the reservation are one transaction, after the last await: concurrent requests
      // cannot both fit into the last slot of a cap.
      const capped = !decision.approved
        ? undefined
        : method === "final"
          ? options.caps.reserve(
              {
                owner: decision.owner,
                sender: userOp.sender,
                nonce: userOp.nonce,
                maxCost: decision.maxCost,
                validUntil: window.validUntil,
              },
              at,
            )
          : options.caps.fits(decision.owner, 0n, at)
            ? ({ ok: true } as const)
            : ({ ok: false, usage: options.caps.usage(decision.owner, at) } as const);
      if (decision.approved && capped !== undefined && !capped.ok) {
        const used = capped.usage;
        decision = {
          approved: false,
          reason: "cap-exceeded",
          detail: `member key ${decision.owner} has ${used.ops} operations and ${used.wei} wei paid or reserved against its daily cap`,
          owner: decision.owner,
          functionName: decision.functionName,
        };
      }
      const base = { method, sender: userOp.sender, nonce: userOp.nonce.toString() };
      if (!decision.approved) {
        metrics.decisions.inc({
          method,
          decision: "refused",
          reason: decision.reason,
          function: decision.functionName ?? "unknown",
        });
        logger.warn(
          {
            ...base,
            decision: "refused",
            reason: decision.reason,
            detail: decision.detail,
            owner: decision.owner,
          },
          `refused: ${decision.reason}`,
        );
        stop();
        return { approved: false, reason: decision.reason, detail: decision.detail };
      }
      let paymasterData: `0x${string}`;
      if (method === "final") {
        paymasterData = await signApproval(
          options.signer,
          userOp,
          request.chainId,
          options.paymaster,
          window,
        );
        metrics.approvedMaxCostWei.inc({ function: decision.functionName }, Number(decision.maxCost));
      } else {
        paymasterData = encodePaymasterData(window, STUB_APPROVAL_SIGNATURE);
      }
      metrics.decisions.inc({ method, decision: "approved", reason: "", function: decision.functionName });
      logger.info(
        {
          ...base,
          decision: "approved",
          owner: decision.owner,
          function: decision.functionName,
          maxCostWei: decision.maxCost.toString(),
          validUntil: window.validUntil,
        },
        method === "final" ? `approved ${decision.functionName}` : `stub for ${decision.functionName}`,
      );
      stop();
      return {
        approved: true,
        paymaster: options.paymaster,
        paymasterData,
        paymasterVerificationGasLimit: PAYMASTER_VERIFICATION_GAS,
        paymasterPostOpGasLimit: PAYMASTER_POST_OP_GAS,
      };
    },
  };
}
