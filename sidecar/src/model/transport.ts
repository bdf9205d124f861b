// How peer traffic may travel: through the dstack gateway, direct UDP, or direct when it works.
// Read by config.ts (the ATTESTMESH_TRANSPORT setting) and transport/ (the selector).
export const TRANSPORT_MODES = ["gateway", "udp", "auto"] as const;
export type TransportMode = (typeof TRANSPORT_MODES)[number];
