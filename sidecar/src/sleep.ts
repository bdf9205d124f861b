// A wait that shutdown cuts short: every retry and poll loop sleeps through it (the service kit's).
export { sleep } from "@attestmesh/shared/service/shutdown.ts";
