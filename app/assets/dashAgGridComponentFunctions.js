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
