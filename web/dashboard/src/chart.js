// Line charts through uPlot.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const colours = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

// lineChart draws xs against each series {label, values} into el.
export function lineChart(el, { xLabel, yLabel, xs, series, width, points }) {
  const main = document.getElementById('main');
  const w = width || Math.max(320, Math.min(1100, (el.clientWidth || (main && main.clientWidth) || 800) - 40));
  const opts = {
    width: w,
    height: 260,
    scales: { x: { time: false } },
    axes: [{ label: xLabel }, { label: yLabel, size: 70 }],
    series: [{ label: xLabel }].concat(series.map((s, i) => ({
      label: s.label, stroke: colours[i % colours.length], width: 2,
      points: { show: points !== undefined ? points : xs.length < 60 },
    }))),
  };
  return new uPlot(opts, [xs].concat(series.map((s) => s.values)), el);
}
