// brianc/node-postgres#2718: a pg Pool created during INIT with its defaults, as most Lambda code has it. Its
// idleTimeoutMillis (10 s) is meant to close a connection long before the server's idle timeout, but the timer
// cannot run while the environment is frozen: the server closes the session meanwhile (PostgreSQL's
// idle_session_timeout, RDS Proxy's idle client timeout), and on thaw the closed idle client's error reaches a
// pool that has no 'error' listener. Node throws it, the runtime client reports an uncaught exception and exits,
// and the invocation it was handed fails with Runtime.ExitError.

const { Pool } = require('pg');
const { settings } = require('../../db');

const idle = process.env.POOL_IDLE_TIMEOUT_MS; // unset: pg's default, 10,000 ms
const pool = new Pool(settings(idle === undefined ? {} : { idleTimeoutMillis: Number(idle) }));

exports.handler = async () => {
  const { rows } = await pool.query('SELECT pg_backend_pid() AS pid');
  return { backendPid: rows[0].pid };
};
