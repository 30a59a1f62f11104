// The guide's tempting configuration, pool {min: 1, max: 1}: one connection kept from one invocation to the next.

const { connect } = require('../db');

const sequelize = connect({ pool: { min: 1, max: 1 } });

exports.handler = async () => {
  const [[row]] = await sequelize.query('SELECT CONNECTION_ID() AS id');
  return { connectionId: row.id };
};
