// The policy replay lives with the owner CLI, which runs it over a live chain's logs; tests reuse it.
export * from "@attestmesh/scripts/owner/policyHistory.ts";
