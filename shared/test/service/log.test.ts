// The one redaction list: every secret field is censored at the top level and one level down, and a
// Secret box prints as a placeholder even under a field name the list does not know.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger, REDACTED_PATHS } from "@attestmesh/shared/service/log.ts";
import { secret } from "@attestmesh/shared/service/secret.ts";

const SECRET = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join("") };
}

test("every field of the redaction list is censored, at the top level and nested", () => {
  const { stream, text } = capture();
  const logger = createLogger({ name: "kit-test", destination: stream });
  for (const path of REDACTED_PATHS.filter((p) => !p.startsWith("*."))) {
    logger.info({ [path]: SECRET }, "top level");
    logger.info({ config: { [path]: SECRET } }, "nested");
  }
  logger.info({ boxed: secret(SECRET), deeper: { boxed: secret(SECRET) } }, "boxed under any name");
  assert.ok(text().includes("[redacted]"));
  assert.ok(text().includes("[secret]"));
  assert.ok(!text().includes(SECRET.slice(2)), "the secret appears in a log line");
  assert.ok(
    text()
      .split("\n")
      .filter(Boolean)
      .every((line) => JSON.parse(line).name === "kit-test"),
  );
});

test("the list covers the keys the daemons hold", () => {
  for (const field of ["gasKey", "signerKey", "privateKey", "secretKey", "secret", "key"]) {
    assert.ok(REDACTED_PATHS.includes(field) && REDACTED_PATHS.includes(`*.${field}`), field);
  }
});
