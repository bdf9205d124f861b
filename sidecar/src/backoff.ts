// The sidecar's retries use the service kit's capped exponential backoff with jitter.
export {
  type BackoffOptions,
  backoffDelay,
  raceAbort,
  retryWithBackoff,
} from "@attestmesh/shared/service/backoff.ts";
