// The sidecar's secrets use the service kit's `Secret` box.
export { type Secret, secret } from "@attestmesh/shared/service/secret.ts";
