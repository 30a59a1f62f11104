// One pg Client connected during INIT and reused by every warm invocation, a common Lambda pattern. The network in
// between (a NAT gateway, Lambda's own network layer: about 350 s) silently forgets a flow idle that long: no FIN,
// no RST. After a longer freeze the next query vanishes into it; pg has no query timeout by default, so the
// invocation waits until the function times out.

const { Client } = require('pg');
const { settings } = require('../../db');

const client = new Client(settings());
const connected = client.connect(); // during INIT; awaited by the first invocation

exports.handler = async () => {
  await connected;
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  return { backendPid: rows[0].pid };
};
