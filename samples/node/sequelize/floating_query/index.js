// A handler that answers before its query is done: the query's connection is still being made when the invocation
// ends, and the pool's timers (acquire: 3000 ms) and mysql2's (connectTimeout: 5000 ms) go on in the next one.

const { connect } = require('../db');

const sequelize = connect({
  // Sequelize learns the server's version on the first query of a process, with a connection of its own outside
  // the pool; stating it (MariaDB 10.11 here) makes the first query's connection the pool's, as it is for every
  // later query.
  databaseVersion: '10.11.0',
  pool: { min: 1, max: 1, acquire: 3000 },
  dialectOptions: { connectTimeout: 5000 },
});

function query() {
  return sequelize.query('SELECT CONNECTION_ID() AS id', { plain: true });
}

// {"wait": true}: the query is awaited, and its connection id returned. Otherwise it is started, not awaited, and
// its outcome logged whenever it comes, with the request id of the invocation that started it.
exports.handler = async (event, context) => {
  const requestId = context.awsRequestId;
  if (event.wait) {
    const row = await query();
    return { connectionId: row.id };
  }
  query().then(
    (row) => console.log(`query of ${requestId} returned connection ${row.id}`),
    (err) => console.log(`query of ${requestId} failed: ${err.name}: ${err.message}`),
  );
  return { requestId };
};

// The same query started and never awaited, without a .catch: its rejection is unhandled.
exports.uncaught = async (event, context) => {
  query();
  return { requestId: context.awsRequestId };
};
