// Link cells of the explorer's grids: navigate inside the app (as dcc.Link does), no page reload.
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

dagcomponentfuncs.PageLink = function (props) {
  const field = (props.colDef.cellRendererParams || {}).hrefField || "href";
  const href = props.data ? props.data[field] : null;
  if (!href) {
    return props.value === undefined || props.value === null ? "" : String(props.value);
  }
  return React.createElement("a", {
    href: href,
    onClick: function (event) {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
        return;
      }
      event.preventDefault();
      window.history.pushState({}, "", href);
      window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
      window.scrollTo(0, 0);
    },
  }, props.value);
};

// A trend as a small line (the portfolio's weekly volumes, oldest left); the last point marked.
dagcomponentfuncs.Sparkline = function (props) {
  const values = Array.isArray(props.value) ? props.value.map(Number) : [];
  const width = 120, height = 26, pad = 3;
  if (values.length < 2) {
    return "";
  }
  const max = Math.max.apply(null, values), min = Math.min.apply(null, values);
  const span = max - min || 1;
  const x = (i) => pad + (i * (width - 2 * pad)) / (values.length - 1);
  const y = (v) => height - pad - ((v - min) * (height - 2 * pad)) / span;
  const points = values.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
  const flagged = props.data && props.data.flag === true;
  const colour = flagged ? "#c92a2a" : "#364fc7";
  const last = values.length - 1;
  return React.createElement("svg", {width: width, height: height, className: "pg-sparkline",
                                     role: "img", "aria-label": "trend " + values.join(", ")},
    React.createElement("polyline", {points: points, fill: "none", stroke: colour, strokeWidth: 1.5}),
    React.createElement("circle", {cx: x(last), cy: y(values[last]), r: 2.5, fill: colour}));
};
