// What the devnet needs from the machine: root (network namespaces, TUN devices), /dev/net/tun, and
// userspace WireGuard, nftables. Installs wireguard-go, wireguard-tools and nftables with apt-get when missing.
import { access } from "node:fs/promises";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { run, which } from "./exec.ts";

export async function preflight(progress: (message: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new AttestmeshError(
      "the devnet needs root: it creates network namespaces and WireGuard TUN devices. Run it as root (for example `sudo -E npm run devnet`), or in a VM or container with CAP_NET_ADMIN.",
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
  const missing: string[] = [];
  if (!(await which("ip"))) missing.push("iproute2");
  if (!(await which("wg"))) missing.push("wireguard-tools");
  if (!(await which("wireguard-go"))) missing.push("wireguard-go");
  // `devnet up --block-udp` drops UDP between namespaces with nftables.
  if (!(await which("nft"))) missing.push("nftables");
  if (missing.length === 0) return;
  if (!(await which("apt-get"))) {
    throw new AttestmeshError(
      `missing ${missing.join(", ")}; install them with your package manager and run again.`,
      {
        code: "DevnetMissingTools",
      },
    );
  }
  progress(`installing ${missing.join(", ")} with apt-get`);
  try {
    await run("apt-get", ["install", "-y", "-qq", ...missing]);
  } catch {
    await run("apt-get", ["update", "-qq"]);
    await run("apt-get", ["install", "-y", "-qq", ...missing]);
  }
}
