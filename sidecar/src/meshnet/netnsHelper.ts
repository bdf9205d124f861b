// The helper behind netnsSockets.ts (the peer transport's sockets and the mesh UDP socket), run as
// `ip netns exec <ns> node netnsHelper.ts` with an IPC channel: it opens sockets inside that namespace
// on request and sends them to the sidecar (Node passes the descriptor), keeping no copy. It exits when
// the sidecar goes away.
import type { Socket as UdpSocket } from "node:dgram";
import type { Server, Socket } from "node:net";
import { createLocalSocketFactory } from "./socketFactory.ts";

export interface HelperRequest {
  readonly id: number;
  readonly op: "udp" | "connect" | "listen";
  readonly host: string;
  readonly port: number;
  readonly timeoutMs?: number;
}

export type HelperReply =
  | { readonly id: number; readonly ok: true }
  | { readonly id: number; readonly ok: false; readonly message: string };

const factory = createLocalSocketFactory();

async function open(request: HelperRequest): Promise<UdpSocket | Socket | Server> {
  if (request.op === "udp") return factory.udp(request.host, request.port);
  if (request.op === "connect") return factory.connect(request.host, request.port, request.timeoutMs ?? 5000);
  return factory.listen(request.host, request.port);
}

process.on("message", (raw) => {
  const request = raw as HelperRequest;
  open(request).then(
    (handle) => {
      process.send?.({ id: request.id, ok: true } satisfies HelperReply, handle, () => {
        // The sidecar holds its own descriptor now; this copy must not read a single byte.
        if ("destroy" in handle) handle.destroy();
        else handle.close();
      });
    },
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.send?.({ id: request.id, ok: false, message } satisfies HelperReply);
    },
  );
});
process.on("disconnect", () => process.exit(0));
