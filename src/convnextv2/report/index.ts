/** Pictures of training and inspection, as PNG bytes or files written atomically. */
export { lineChart, writeLineChart, lineChartLayout, lineChartSvg, type LineChartSpec, type LineSeries, type LineChartLayout } from './line_chart.js';
export { barChart, writeBarChart, barChartLayout, barChartSvg, type BarChartSpec, type BarSeries, type BarChartLayout } from './bar_chart.js';
export { imageGrid, writeImageGrid, imageGridLayout, type ImageGridOptions } from './image_grid.js';
export { heatmapGrid, writeHeatmapGrid, heatmapGridLayout, normaliseMap, type HeatmapGridOptions } from './heatmap_grid.js';
export { confusionMatrix, writeConfusionMatrix, confusionMatrixLayout, confusionMatrixSvg, type ConfusionMatrixOptions } from './confusion_matrix.js';
export { plotRect, CHART_SIZE, type PlotRect } from './chart_frame.js';
export { viridis, blues, SERIES_COLORS } from './colors.js';
export { writeFileAtomic } from './png.js';
export { ReportError } from './checks.js';
export type { GridLayout } from './grid_layout.js';
