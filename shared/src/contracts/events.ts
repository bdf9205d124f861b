// Cluster events that several packages pick out of raw logs, defined once from the generated ABI.
import { getAbiItem, toEventSelector } from "viem";
import { clusterAbi } from "./abi.ts";

/** `MessageSent(recipient member id, …)`: a sealed member-to-member message. */
export const MESSAGE_SENT_EVENT = getAbiItem({ abi: clusterAbi, name: "MessageSent" });

/** topic0 of MessageSent (lowercase hex); topic1 is the recipient member id. */
export const MESSAGE_SENT_TOPIC = toEventSelector(MESSAGE_SENT_EVENT);
