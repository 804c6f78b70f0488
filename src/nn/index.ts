/** nexgrad.nn: layers, losses, initialisers, optimizers, schedules, EMA, safetensors IO. */
export * from './layers.js';
export * from './losses.js';
export * from './init.js';
export * from './optim.js';
export * from './schedule.js';
export * from './ema.js';
export * from './safetensors.js';
