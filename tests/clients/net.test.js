'use strict';
// Scenarios driven through mpp-client-net (multiplayerpiano.net protocol client).
require('./suite').defineSuite('net');
