'use strict';
// Scenarios driven through mpp-client-xt (classic multiplayerpiano.com client).
require('./suite').defineSuite('xt');
