/** nexgrad.convnextv2: configs, the model, FCMAE pretraining, checkpoints, parameter groups. */
export * from './config.js';
export * from './model.js';
export * as fcmae from './fcmae.js';
export * from './checkpoint.js';
export * from './param_groups.js';
export * as report from './report/index.js';
