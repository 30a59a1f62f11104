// A Node.js function URL in RESPONSE_STREAM mode: a status, headers and cookies in the prelude, then the body piece
// by piece. With ?fifo=PATH it waits after the first piece until the caller opens that FIFO, which the caller does
// only once it has read the first piece: proof that the piece reached it before the rest was written.
import { promises as fs } from "node:fs";

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const query = event.queryStringParameters ?? {};
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { "Content-Type": "text/plain", "X-Streamed": "yes" },
    cookies: ["s=1; Path=/"],
  });
  const pieces = Number(query.pieces ?? 3);
  for (let i = 0; i < pieces; i++) {
    stream.write(`piece ${i}\n`);
    if (i === 0 && query.fifo) {
      await fs.readFile(query.fifo); // resolves once the caller has opened the FIFO to write, and closed it
    }
  }
  stream.end();
});
