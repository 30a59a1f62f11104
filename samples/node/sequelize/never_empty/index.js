// A callback handler with the guide's tempting pool {min: 1, max: 1} and the runtime's default
// callbackWaitsForEmptyEventLoop (true): the invocation ends only once the event loop is empty, and it never is -
// the pool keeps its idle connection open and re-arms its eviction timer every `evict` ms while it holds one.

const { connect } = require('../db');

const sequelize = connect({ pool: { min: 1, max: 1 } });

exports.handler = (event, context, callback) => {
  sequelize.query('SELECT CONNECTION_ID() AS id', { plain: true }).then(
    (row) => callback(null, { connectionId: row.id }),
    (err) => callback(err),
  );
};
