// What the devnet needs from the machine: root (network namespaces, TUN devices), /dev/net/tun, and the
// system packages of systemPackages.ts (userspace WireGuard, iproute2, ping, nftables, curl), which it installs
// with apt-get when they are missing.
import { access } from "node:fs/promises";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { installSystemPackages, missingPackages } from "./systemPackages.ts";

export async function preflight(progress: (message: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    const missing = await missingPackages();
    const installs =
      missing.length > 0 ? ` (as root it also installs ${missing.join(", ")} with apt-get)` : "";
    throw new AttestmeshError(
      `the devnet needs root: it creates network namespaces and WireGuard TUN devices. Run it as root (for example \`sudo -E npm run devnet\`)${installs}, or in a VM or container with CAP_NET_ADMIN.`,
      { code: "DevnetNeedsRoot" },
    );
  }
  try {
    await access("/dev/net/tun");
  } catch {
    throw new AttestmeshError(
      "/dev/net/tun is missing: load the tun module (`modprobe tun`) or run where TUN devices exist.",
      {
        code: "DevnetNeedsTun",
      },
    );
  }
  await installSystemPackages(progress, "npm run devnet");
}
