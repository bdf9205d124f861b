// No daemon logs a secret: an object holding each daemon's secrets (by field name, nested, and boxed)
// goes through the sidecar's, the indexer's and the sponsor's logger, and the secret never appears.
// The sponsor's logger had no redaction before the service kit, although it holds a signer key.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger as indexerLogger } from "@attestmesh/indexer/log.ts";
import { secret } from "@attestmesh/shared/service/secret.ts";
import { createLogger as sidecarLogger } from "@attestmesh/sidecar/log.ts";
import { createLogger as sponsorLogger } from "@attestmesh/sponsor/log.ts";

const SECRET = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";

const LOGGERS = { sidecar: sidecarLogger, indexer: indexerLogger, sponsor: sponsorLogger };

for (const [daemon, createLogger] of Object.entries(LOGGERS)) {
  test(`the ${daemon}'s logger never prints a secret`, () => {
    const chunks: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk.toString());
        callback();
      },
    });
    const logger = createLogger({ level: "trace", destination });
    const holder = {
      gasKey: SECRET,
      signerKey: SECRET,
      privateKey: SECRET,
      secretKey: SECRET,
      secret: SECRET,
      key: SECRET,
      config: { gasKey: SECRET, signerKey: SECRET, secretKey: SECRET },
      boxed: secret(SECRET),
      nested: { deeper: { boxed: secret(SECRET) } },
    };
    logger.info(holder, "an object holding secrets");
    const { config, boxed, nested, ...fields } = holder;
    logger.error({ err: new Error("failed"), config: fields, boxed, nested }, "the same, one level down");
    const text = chunks.join("");
    assert.ok(text.includes(`attestmesh-${daemon}`), "the line names the daemon");
    assert.ok(text.includes("[redacted]") && text.includes("[secret]"));
    assert.ok(!text.includes(SECRET.slice(2)), `the ${daemon} logged the secret: ${text}`);
  });
}
